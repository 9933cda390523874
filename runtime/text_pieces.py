"""A text cut into sentence-sized pieces to translate, and put back together: nothing is cut short.

A model reads at most `max_input_tokens` of a prompt and writes at most `max_new_tokens`, so a long
paragraph sent as one prompt comes back shortened. Here a text becomes a list of segments: pieces
to translate, and the whitespace between them (paragraph breaks, the spaces after a full stop),
kept as it was. Sentences come from sentencex (a maintained rule-based splitter for ~300
languages); a sentence still over the token limit is halved at the whitespace nearest its middle
(at its middle character where it has none, as in Japanese or Chinese) until every piece fits.
"""
import re

_PARAGRAPH = re.compile(r"(\s*\n\s*)")
_SPACE = re.compile(r"\s+")


def split_text(text: str, lang: str, count_tokens, limit: int, sentences: bool = True) -> list[tuple[bool, str]]:
    """[(is_piece, string)]: joined in order they give `text` back; each piece has at most `limit` tokens
    by count_tokens (a piece of one character may exceed it: nothing smaller can be sent).
    sentences=False: the text is one piece, split only where it is over the limit."""
    if not sentences:
        if not text.strip():
            return [(False, text)] if text else []
        lead, body, trail = _edges(text)
        return [*([(False, lead)] if lead else []), *_fit(body, count_tokens, limit),
                *([(False, trail)] if trail else [])]
    segments = []
    for chunk in _PARAGRAPH.split(text):
        if not chunk.strip():
            if chunk:
                segments.append((False, chunk))
            continue
        lead, body, trail = _edges(chunk)
        if lead:
            segments.append((False, lead))
        for is_piece, part in _sentences(body, lang):
            segments += _fit(part, count_tokens, limit) if is_piece else [(False, part)]
        if trail:
            segments.append((False, trail))
    return segments


def token_counter(tokenizer):
    """count_tokens for split_text: a text's length in the tokens of a `tokenizers.Tokenizer`, as a prompt's
    source is counted against --max-input-tokens (no special tokens)."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def join_pieces(segments: list[tuple[bool, str]], translations: list[str]) -> str:
    """The text with each piece replaced by its translation, in order."""
    out, it = [], iter(translations)
    for is_piece, part in segments:
        out.append(next(it) if is_piece else part)
    return "".join(out)


def pieces_of(segments: list[tuple[bool, str]]) -> list[str]:
    return [part for is_piece, part in segments if is_piece]


def _edges(chunk: str) -> tuple[str, str, str]:
    body = chunk.strip()
    start = chunk.index(body)
    return chunk[:start], body, chunk[start + len(body):]


def _sentences(paragraph: str, lang: str) -> list[tuple[bool, str]]:
    """The paragraph's sentences as pieces and the whitespace between them; the whole paragraph as one
    piece if the splitter is missing or changed the text."""
    try:
        from sentencex import segment
    except ImportError:
        return [(True, paragraph)]
    out, at = [], 0
    for sentence in segment(lang.split("-")[0].split("_")[0], paragraph):
        sentence = sentence.strip()
        if not sentence:
            continue
        found = paragraph.find(sentence, at)
        if found < 0 or paragraph[at:found].strip():
            return [(True, paragraph)]
        if found > at:
            out.append((False, paragraph[at:found]))
        out.append((True, sentence))
        at = found + len(sentence)
    if paragraph[at:].strip():
        return [(True, paragraph)]
    return out or [(True, paragraph)]


def _fit(piece: str, count_tokens, limit: int) -> list[tuple[bool, str]]:
    if len(piece) <= 1 or count_tokens(piece) <= limit:
        return [(True, piece)]
    middle = len(piece) // 2
    spaces = [m for m in _SPACE.finditer(piece) if 0 < m.start() and m.end() < len(piece)]
    if spaces:
        cut = min(spaces, key=lambda m: abs(m.start() - middle))
        left, gap, right = piece[:cut.start()], piece[cut.start():cut.end()], piece[cut.end():]
        return [*_fit(left, count_tokens, limit), (False, gap), *_fit(right, count_tokens, limit)]
    return [*_fit(piece[:middle], count_tokens, limit), *_fit(piece[middle:], count_tokens, limit)]
