"""HTML for `format=html`: the text runs between tags are translated, the markup is kept as it is.

LibreTranslate translates an HTML document's text and returns the document with its tags, so a CMS
plugin can send page fragments. Here the fragment is cut into markup and text runs; each run with
words in it is translated on its own (its surrounding whitespace kept), and the pieces are joined
back in order. Script and style contents are markup, not text.
"""
from html import escape, unescape
from html.parser import HTMLParser

_RAW = {"script", "style"}


class _Splitter(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.parts: list[tuple[bool, str]] = []   # (is_text, raw source)
        self.raw_depth = 0

    def _markup(self):
        self.parts.append((False, self.get_starttag_text() or ""))

    def handle_starttag(self, tag, attrs):
        self._markup()
        self.raw_depth += tag in _RAW

    def handle_startendtag(self, tag, attrs):
        self._markup()

    def handle_endtag(self, tag):
        self.parts.append((False, f"</{tag}>"))
        self.raw_depth -= tag in _RAW and self.raw_depth > 0

    def handle_data(self, data):
        self.parts.append((self.raw_depth == 0, data))

    def handle_entityref(self, name):
        self.parts.append((self.raw_depth == 0, f"&{name};"))

    def handle_charref(self, name):
        self.parts.append((self.raw_depth == 0, f"&#{name};"))

    def handle_comment(self, data):
        self.parts.append((False, f"<!--{data}-->"))

    def handle_decl(self, decl):
        self.parts.append((False, f"<!{decl}>"))


def split_html(html: str) -> tuple[list[str], list[int]]:
    """The fragment's pieces (markup and text, joined they give the input back) and which are text to translate.

    Adjacent text pieces (entities split them) are merged into one run, unescaped for translation.
    """
    parser = _Splitter()
    parser.feed(html)
    parser.close()
    pieces, is_text = [], []
    for text, raw in parser.parts:
        if text and is_text and is_text[-1]:
            pieces[-1] += raw
        else:
            pieces.append(raw)
            is_text.append(text)
    return pieces, [i for i, t in enumerate(is_text) if t and unescape(pieces[i]).strip()]


def text_of(piece: str) -> str:
    return unescape(piece).strip()


def join_html(pieces: list[str], runs: list[int], translations: list[str]) -> str:
    """Put each run's translation back, with the run's own leading and trailing whitespace."""
    out = list(pieces)
    for i, translated in zip(runs, translations):
        raw = unescape(pieces[i])
        lead, trail = raw[: len(raw) - len(raw.lstrip())], raw[len(raw.rstrip()):]
        out[i] = lead + escape(translated, quote=False) + trail
    return "".join(out)
