"""Mixed-direction batch files for a routed base: each line `src<TAB>tgt<TAB>text`, or plain text with --src/--tgt.

`MixedLines` gives a RoutedTranslator the interface that batch translation (runtime/batch.py)
drives, so a mixed file streams, keeps one output line per input line in order, and resumes
exactly like a single-direction one. Every line's direction is checked before anything is
written (`check_lines`), so a bad line stops the run with its number and the output untouched.
"""
from modmt.runtime.errors import ModmtError


def split_line(line: str, number: int | None = None) -> tuple[str, str, str] | None:
    """(src, tgt, text) of a TSV line; None for an empty line (its output line stays empty)."""
    if not line.strip():
        return None
    fields = line.split("\t", 2)
    if len(fields) != 3:
        where = f"line {number}: " if number is not None else ""
        raise ModmtError(f"{where}expected src<TAB>tgt<TAB>text, got {len(fields)} field(s); fix the line, or "
                         "give --src and --tgt for a plain-text file")
    return fields[0].strip(), fields[1].strip(), fields[2]


class MixedLines:
    """A RoutedTranslator seen as a one-direction translator of lines: TSV lines, or one fixed direction."""

    def __init__(self, routed, src: str | None = None, tgt: str | None = None, w: str | None = None):
        self.routed, self.fixed, self.w = routed, (src, tgt) if src and tgt else None, w
        if (src is None) != (tgt is None):
            raise ModmtError("give both --src and --tgt (plain text), or neither (src<TAB>tgt<TAB>text lines)")
        if self.fixed:
            routed.requests(1, src=src, tgt=tgt, w=w)  # an unknown direction or a bad --w fails now
        self.src, self.tgt = (src, tgt) if self.fixed else ("mixed", "mixed")

    def check_lines(self, lines) -> None:
        """Every line's direction and --w, before the first output line is written."""
        if self.fixed:
            return
        seen = set()
        for number, line in enumerate(lines, 1):
            parsed = split_line(line, number)
            if parsed and parsed[:2] not in seen:
                try:
                    self.routed.requests(1, src=parsed[0], tgt=parsed[1], w=self.w)
                except ModmtError as e:
                    raise ModmtError(f"line {number}: {e}") from None
                seen.add(parsed[:2])

    def translate(self, lines: list[str], settings=None, on_truncate=None) -> list[str]:
        if self.fixed:
            return self.routed.translate(lines, src=self.fixed[0], tgt=self.fixed[1], w=self.w, settings=settings,
                                         on_truncate=on_truncate)
        parsed = [split_line(line) for line in lines]
        kept = [i for i, p in enumerate(parsed) if p is not None]
        # on_truncate hears the index among `lines`, not among `kept`
        note = (lambda index, length, limit: on_truncate(kept[index], length, limit)) if on_truncate else None
        outputs = self.routed.translate([parsed[i][2] for i in kept], on_truncate=note,
                                        directions=[(parsed[i][0], parsed[i][1], self.w) for i in kept], settings=settings)
        results = [""] * len(lines)
        for i, text in zip(kept, outputs):
            results[i] = text
        return results
