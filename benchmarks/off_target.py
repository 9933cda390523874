"""Off-target outputs as a measured quantity: the share not in the target language, in the source's, or copies.

Each output is labelled by py3langid restricted to the pool's languages (runtime/language_detection.py),
every output whatever its length (an empty one counts as off-target: it is no translation). The
detector's own error is measured the same way on the references: that share is the floor below which
an off-target figure means nothing.
"""
from modmt.runtime.language_detection import LanguageDetector
from modmt.runtime.target_guard import same_text

_detectors: dict[tuple, LanguageDetector] = {}


def detector_for(codes) -> LanguageDetector:
    key = tuple(sorted(set(codes)))
    if key not in _detectors:
        _detectors[key] = LanguageDetector(list(key))
    return _detectors[key]


def label(detector: LanguageDetector, text: str) -> str | None:
    found = detector.detect(text) if text.strip() else None
    return found[0] if found else None


def off_target_shares(hypotheses: list[str], references: list[str], src: str, tgt: str, codes,
                      sources: list[str] | None = None) -> dict:
    """{"off_target", "source_language", "copies" (None without sources), "reference_off_target"}: shares
    in 0..1 of the outputs (of the references for the floor)."""
    detector = detector_for({*codes, src, tgt})
    n = max(len(hypotheses), 1)
    labels = [label(detector, h) for h in hypotheses]
    copies = None
    if sources is not None and src != tgt:
        copies = sum(same_text(h, s) for h, s in zip(hypotheses, sources) if s.strip()) / n
    return {"off_target": sum(found != tgt for found in labels) / n,
            "source_language": 0.0 if src == tgt else sum(found == src for found in labels) / n,
            "copies": copies,
            "reference_off_target": sum(label(detector, r) != tgt for r in references) / max(len(references), 1)}


def pooled_shares(cells: list[dict], codes) -> dict:
    """The shares over every output of several cells (each with src, tgt, hypotheses, references, and
    optionally sources or its own shares), weighted by their sizes."""
    totals, n, copies_n = {"off_target": 0.0, "source_language": 0.0, "copies": 0.0, "reference_off_target": 0.0}, 0, 0
    for cell in cells:
        shares = cell.get("off_target_shares") or off_target_shares(
            cell["hypotheses"], cell["references"], cell["src"], cell["tgt"], codes, cell.get("sources"))
        size = len(cell["hypotheses"])
        n += size
        for key in ("off_target", "source_language", "reference_off_target"):
            totals[key] += shares[key] * size
        if shares["copies"] is not None:
            totals["copies"] += shares["copies"] * size
            copies_n += size
    return {"off_target": totals["off_target"] / max(n, 1), "source_language": totals["source_language"] / max(n, 1),
            "copies": totals["copies"] / copies_n if copies_n else None,
            "reference_off_target": totals["reference_off_target"] / max(n, 1), "outputs": n}


def off_target_markdown(shares: dict, methods) -> str:
    """`modmt-bench quality`'s table beside chrF++: per method, off-target, source-language and copy shares
    pooled over its directions, and the detector's floor. shares: {method key: {(src, tgt): shares}}."""
    lines = ["Outputs not in the target language (py3langid over the pool's languages; floor: its error on the "
             "references)", "", "| method | off-target % | in the source language % | copies % | floor % |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for method in methods:
        cells = list(shares.get(method.key, {}).values())
        if not cells:
            continue
        mean = {k: sum(c[k] for c in cells) / len(cells) for k in ("off_target", "source_language",
                                                                     "reference_off_target")}
        copies = [c["copies"] for c in cells if c["copies"] is not None]
        lines.append(f"| {method.label} | {100 * mean['off_target']:.1f} | {100 * mean['source_language']:.1f} | "
                     f"{f'{100 * sum(copies) / len(copies):.1f}' if copies else '-'} | "
                     f"{100 * mean['reference_off_target']:.1f} |")
    return "\n".join(lines) + "\n"
