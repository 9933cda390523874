"""Parallel corpora behind one interface: modmt corpus directories and FLORES-101/200 as distributed.

A modmt corpus directory:
    train/en-xx.tsv     English-centric pairs, "english<TAB>xx" per line (UTF-8)
    dev/xx.txt          multi-way aligned: line i is the same segment in every language
    devtest/xx.txt
FLORES-101 (`flores101_dataset/`): dev/eng.dev, devtest/eng.devtest, ... one file per language.
FLORES-200 (`flores200_dataset/`): dev/eng_Latn.dev, devtest/eng_Latn.devtest, ...
FLORES has no training split; as in the paper, its `dev` split provides the training pairs.
"""
from pathlib import Path

from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import ENGLISH, Language, LanguageRegistry
from modmt.runtime.text_lines import decode_lines

SPLITS = ("dev", "devtest")


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file without their line endings; bad bytes are an error naming the line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModmtError(f"{path} does not exist") from None
    return decode_lines(data, str(path), "re-encode the file as UTF-8")


def read_segments(path: Path) -> list[str]:
    """One segment per line; an empty line would silently shift the alignment, so it is an error."""
    lines = read_lines(path)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise ModmtError(f"{path}:{number}: empty line in a line-aligned file; "
                             "every line must hold one segment")
    return lines


def read_pairs_tsv(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ModmtError(f"{path}:{number}: expected 2 tab-separated columns (english, target), "
                             f"got {len(fields)}")
        english, target = fields[0].strip(), fields[1].strip()
        if not english or not target:
            raise ModmtError(f"{path}:{number}: empty {'English' if not english else 'target'} column")
        pairs.append((english, target))
    return pairs


class Corpus:
    """English-centric training pairs and multi-way evaluation segments, whatever the layout."""

    format = "?"

    def __init__(self, root: Path, registry: LanguageRegistry):
        self.root = root
        self.registry = registry

    def languages(self) -> list[str]:
        raise NotImplementedError

    def _pairs(self, lang: Language) -> list[tuple[str, str]]:
        raise NotImplementedError

    def segment_file(self, split: str, lang: Language) -> Path:
        raise NotImplementedError

    def pairs(self, code: str) -> list[tuple[str, str]]:
        """(english, xx) pairs for training xx's adapters; for English, (english, english) copies."""
        lang = self.registry.get(code)
        if lang.code == ENGLISH:
            return self._english_copies()
        pairs = self._pairs(lang)
        if not pairs:
            raise ModmtError(f"corpus {self.root} has no en-{code} pairs; add some before training {code}")
        return pairs

    def segments(self, split: str, code: str) -> list[str]:
        if split not in SPLITS:
            raise ModmtError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        path = self.segment_file(split, self.registry.get(code))
        if not path.exists():
            raise ModmtError(f"corpus {self.root} has no {split} segments for {code}: expected {path}")
        return read_segments(path)

    def multiway(self, split: str, codes: list[str]) -> dict[str, list[str]]:
        """Aligned segments for several languages; differing line counts are an error."""
        table = {code: self.segments(split, code) for code in codes}
        counts = {code: len(lines) for code, lines in table.items()}
        if len(set(counts.values())) > 1:
            raise ModmtError(f"{split} files of {self.root} are not aligned (lines per language: {counts}); "
                             "every language must have the same number of lines")
        return table

    def _english_copies(self) -> list[tuple[str, str]]:
        seen = {}
        for code in self.languages():
            if code != ENGLISH:
                for english, _ in self._pairs(self.registry.get(code)):
                    seen.setdefault(english, None)
        if not seen:
            raise ModmtError(f"corpus {self.root} has no English text to train the en adapters on")
        return [(e, e) for e in seen]


class ModmtCorpus(Corpus):
    format = "modmt"

    def train_file(self, lang: Language) -> Path:
        return self.root / "train" / f"en-{lang.code}.tsv"

    def languages(self) -> list[str]:
        codes = {ENGLISH}
        codes.update(p.stem[3:] for p in (self.root / "train").glob("en-*.tsv"))
        for split in SPLITS:
            codes.update(p.stem for p in (self.root / split).glob("*.txt"))
        return sorted(c for c in codes if c in self.registry)

    def _pairs(self, lang: Language) -> list[tuple[str, str]]:
        path = self.train_file(lang)
        if not path.exists():
            raise ModmtError(f"no training pairs for {lang.code}: expected {path} "
                             "(English<TAB>target per line)")
        return read_pairs_tsv(path)

    def segment_file(self, split: str, lang: Language) -> Path:
        return self.root / split / f"{lang.code}.txt"


class FloresCorpus(Corpus):
    """FLORES-101 or -200; the code field (flores101 / flores200) names each language's file."""

    def __init__(self, root: Path, registry: LanguageRegistry, version: int):
        super().__init__(root, registry)
        self.version = version
        self.format = f"flores{version}"

    def _stem(self, lang: Language) -> str:
        stem = lang.flores101 if self.version == 101 else lang.flores200
        if not stem:
            raise ModmtError(f"language {lang.code} has no FLORES-{self.version} code; "
                             f"add \"flores{self.version}\" for it in your languages file")
        return stem

    def segment_file(self, split: str, lang: Language) -> Path:
        return self.root / split / f"{self._stem(lang)}.{split}"

    def languages(self) -> list[str]:
        return [code for code in self.registry.codes
                if (stem := getattr(self.registry.get(code), f"flores{self.version}"))
                and (self.root / "dev" / f"{stem}.dev").exists()]

    def _pairs(self, lang: Language) -> list[tuple[str, str]]:
        table = self.multiway("dev", [ENGLISH, lang.code])
        return list(zip(table[ENGLISH], table[lang.code]))

    def _english_copies(self) -> list[tuple[str, str]]:
        return [(e, e) for e in self.segments("dev", ENGLISH)]


def open_corpus(path: str | Path, registry: LanguageRegistry) -> Corpus:
    """Detect the layout under `path` (also its flores101_dataset/ or flores200_dataset/ folder)."""
    root = Path(path)
    if not root.is_dir():
        raise ModmtError(f"corpus {root} is not a directory; build one with `modmt data ddtp --out DIR` "
                         "or point at a FLORES-101/200 folder")
    for candidate in (root, root / "flores200_dataset", root / "flores101_dataset"):
        english = registry.get(ENGLISH)
        if (candidate / "dev" / f"{english.flores200}.dev").exists():
            return FloresCorpus(candidate, registry, 200)
        if (candidate / "dev" / f"{english.flores101}.dev").exists():
            return FloresCorpus(candidate, registry, 101)
    if (root / "train").is_dir() or any((root / s).is_dir() for s in SPLITS):
        return ModmtCorpus(root, registry)
    raise ModmtError(f"{root} is neither a modmt corpus (train/en-xx.tsv, dev/xx.txt, devtest/xx.txt) "
                     "nor a FLORES-101/200 folder (dev/eng.dev or dev/eng_Latn.dev)")
