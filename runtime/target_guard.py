"""The target-language guard: of a sentence's finished hypotheses, the best-scoring one in the language asked for.

A merged pair of adapters sometimes answers in English (the pivot both were trained through) or
copies its source, while another hypothesis of the same beam is a translation. The guard labels
each hypothesis with the language detector of runtime/language_detection.py, restricted to the
languages the export holds, and keeps the beam's order except where the best hypothesis is *surely*
in another language (or a copy of its source) and a lower one is surely in the target language.

Sure means: at least MIN_LETTERS letters (a CJK character counts CJK_LETTERS: it carries more),
letters at least half of the text's visible characters (not code, numbers or a list of names), the
detector at least SURE confident, or the text a copy of a source that is itself long enough to
judge. Where the detector is unsure, or does not know the target language at all, the beam's best
stands: the guard never overrides on a guess. With one hypothesis (greedy search) there is nothing
to choose from: the guard labels it and counts it as off-target, nothing more.
"""
import threading
import unicodedata
from dataclasses import dataclass, field

from modmt.runtime.language_detection import LanguageDetector

MIN_LETTERS = 12
CJK_LETTERS = 3
SURE = 95.0  # the detector's confidence (0..100, over the held languages) that a label is right

ON_TARGET, GUARDED, OFF_TARGET, UNSURE = "on-target", "guarded", "off-target", "unsure"


def letter_weight(text: str) -> tuple[int, int]:
    """(letters, visible characters), a CJK or kana character counting CJK_LETTERS letters and characters."""
    letters = visible = 0
    for ch in text:
        if ch.isspace():
            continue
        wide = unicodedata.east_asian_width(ch) in ("W", "F") and ch.isalpha()
        weight = CJK_LETTERS if wide else 1
        visible += weight
        letters += weight if ch.isalpha() else 0
    return letters, visible


def judgeable(text: str) -> bool:
    """Whether a text is long and wordy enough for its language to be told (not a name, a number or code)."""
    letters, visible = letter_weight(text)
    return letters >= MIN_LETTERS and letters * 2 >= visible


def same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass
class GuardCounts:
    """What the guard did, over a translator's or a server's life: sentences judged, outputs it replaced by a
    lower hypothesis in the target language, and outputs it found off-target with no such hypothesis."""
    judged: int = 0
    guarded: int = 0
    off_target: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, verdict: str) -> None:
        with self.lock:
            self.judged += verdict != UNSURE
            self.guarded += verdict == GUARDED
            self.off_target += verdict == OFF_TARGET

    def summary(self) -> str:
        return (f"target-language guard: {self.guarded} outputs replaced by a lower hypothesis in the target "
                f"language, {self.off_target} still off-target, of {self.judged} it could judge")


class TargetGuard:
    """Labels texts among `codes` (the languages an export or a server holds) and picks hypotheses."""

    def __init__(self, codes):
        self.detector = LanguageDetector(sorted(set(codes)))
        self.counts = GuardCounts()

    def knows(self, code: str) -> bool:
        return code.split("_")[0].split("-")[0] in self.detector.codes

    def language(self, text: str) -> str | None:
        """The text's language where the detector is sure of it, else None."""
        if not judgeable(text):
            return None
        found = self.detector.detect(text)
        return found[0] if found and found[1] >= SURE else None

    def judge(self, text: str, source: str, tgt: str) -> str:
        """ON_TARGET, OFF_TARGET (surely another language, or a copy of a judgeable source), or UNSURE."""
        if not self.knows(tgt):
            return UNSURE
        if source and judgeable(source) and same_text(text, source) and not self._same_language(source, tgt):
            return OFF_TARGET
        found = self.language(text)
        return UNSURE if found is None else ON_TARGET if found == tgt else OFF_TARGET

    def _same_language(self, source: str, tgt: str) -> bool:
        return self.language(source) == tgt  # an en->en request may echo its source

    def choose(self, hypotheses: list[str], source: str, tgt: str) -> tuple[int, str]:
        """(index of the hypothesis to answer with, verdict); hypotheses best first. Counted in self.counts."""
        index, verdict = 0, UNSURE
        if hypotheses:
            verdict = self.judge(hypotheses[0], source, tgt)
            if verdict == OFF_TARGET:
                for i, text in enumerate(hypotheses[1:], 1):
                    if self.judge(text, source, tgt) == ON_TARGET:
                        index, verdict = i, GUARDED
                        break
        self.counts.add(verdict)
        return index, verdict

    def order(self, hypotheses: list[str], source: str, tgt: str) -> list[str]:
        """The hypotheses with the chosen one first, the others in the beam's order."""
        index, _ = self.choose(hypotheses, source, tgt)
        return [hypotheses[index], *hypotheses[:index], *hypotheses[index + 1:]]


def guarded_choice(guard: "TargetGuard", sources: list[str], target_of):
    """choose(i, hypotheses) for runtime/decoding.py's translate_texts: text i's answer, its target target_of(i)."""
    def choose(i: int, hypotheses: list[str]) -> str:
        index, _ = guard.choose(hypotheses, sources[i], target_of(i))
        return hypotheses[index]
    return choose


def export_languages(manifest: dict) -> list[str]:
    """The languages a guard tells apart for one export: its pool's where recorded, always src, tgt and English
    (the pivot the adapters were trained through, where outputs leak to)."""
    recorded = manifest.get("languages") or []
    return sorted({*map(str, recorded), str(manifest["src"]), str(manifest["tgt"]), "en"})
