"""`modmt-translate --split sentences`: each line translated sentence by sentence, still one output line per line.

Wraps what run_batch drives (a Translator, or MixedLines over a routed session): a window's lines are
cut into sentences (runtime/text_pieces.py, as `modmt serve` cuts texts), all the sentences are
translated as one list, and each line is put back together with its own whitespace. A sentence over
--max-input-tokens is cut further, never truncated; a TSV line's pieces keep its src<TAB>tgt.
"""
from modmt.runtime.mixed_lines import split_line
from modmt.runtime.text_pieces import join_pieces, pieces_of, split_text, token_counter


class SentenceLines:
    def __init__(self, translator, tokenizer, max_input_tokens: int):
        self.translator, self.limit = translator, max_input_tokens
        self.src, self.tgt = translator.src, translator.tgt
        self.count_tokens = token_counter(tokenizer)
        fixed = getattr(translator, "fixed", None)
        # A TSV line (a routed session without --src/--tgt) keeps its direction on every piece.
        self.tsv = hasattr(translator, "routed") and fixed is None
        self.lang = fixed[0] if fixed else self.src

    def translate(self, lines: list[str], settings=None, on_truncate=None) -> list[str]:
        layouts, pieces, owner = [], [], []
        for number, line in enumerate(lines):
            prefix, lang, text = "", self.lang, line
            if self.tsv:
                parsed = split_line(line)
                if parsed is None:
                    layouts.append(None)
                    continue
                prefix, lang, text = f"{parsed[0]}\t{parsed[1]}\t", parsed[0], parsed[2]
            segments = split_text(text, lang, self.count_tokens, self.limit) if text.strip() else []
            layouts.append((segments, len(pieces)))
            for piece in pieces_of(segments):
                pieces.append(prefix + piece)
                owner.append(number)
        note = (lambda index, length, limit: on_truncate(owner[index], length, limit)) if on_truncate else None
        translated = self.translator.translate(pieces, settings, on_truncate=note) if pieces else []
        out = []
        for layout in layouts:
            if layout is None or not layout[0]:
                out.append("")
                continue
            segments, at = layout
            # A translation keeps no line break of its own: the line's breaks are the source's.
            out.append(join_pieces(segments, translated[at:at + len(pieces_of(segments))]))
        return out
