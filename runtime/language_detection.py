"""Which of the languages held a text is in: the server's `source=auto` and `/detect`, and the target-language guard.

py3langid (a maintained fork of langid.py: a naive Bayes model over byte n-grams, 97 languages,
shipped inside the package) is restricted to the source languages held, so it never answers a
language the server cannot translate from. A code it does not know (a user's language outside
its 97) is never detected; such a language must be given as `source`.
"""
import copy
import functools

from modmt.runtime.errors import ModmtError


@functools.cache
def _full_identifier():
    """py3langid's model, loaded once per process (a second or so); each detector restricts a shallow copy."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise ModmtError("language detection needs py3langid, a dependency of modmt: pip install py3langid") from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


class LanguageDetector:
    def __init__(self, codes: list[str]):
        # set_languages replaces the copy's class tables, never the shared model's arrays
        self.identifier = copy.copy(_full_identifier())
        known = set(self.identifier.nb_classes)
        # The registry's codes may carry a region (zh_CN); langid's are bare ISO 639-1.
        self.code_of = {code.split("_")[0].split("-")[0]: code for code in sorted(codes)}
        self.codes = [c for c in self.code_of if c in known]
        if self.codes:
            self.identifier.set_languages(self.codes)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """[(code, confidence in 0..100)], most likely first; [] if no held language is detectable."""
        if not self.codes or not text.strip():
            return []
        if len(self.codes) == 1:
            return [(self.code_of[self.codes[0]], 100.0)]
        return [(self.code_of[code], round(100.0 * float(p), 2)) for code, p in self.identifier.rank(text)]

    def detect(self, text: str) -> tuple[str, float] | None:
        ranked = self.rank(text)
        return ranked[0] if ranked else None
