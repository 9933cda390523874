"""Held-out paragraphs for the off-target check: N prose paragraphs per language from the Debian Reference.

The Debian Reference manual (packages debian-reference-{en,fr,de,ja,zh-cn}, `apt-get download` them and
`dpkg-deb -x` into DIR) is text no adapter was trained on (DDTP is package descriptions). Its translations
leave some paragraphs in English, so a paragraph is kept only where langdetect (a detector modmt does not use)
is at least 0.99 sure it is in its language; prose only (no command lines, mostly letters), 120-700 characters.
Paragraphs are spread over the manual (every k-th kept one). Writes OUT/<lang>.txt, one paragraph per line.

    python heldout-paragraphs.py DIR OUT [--per-language 8]
"""
import argparse
import gzip
import re
import unicodedata
from pathlib import Path

from langdetect import DetectorFactory, detect_langs

DetectorFactory.seed = 0
FILES = {"en": "en", "fr": "fr", "de": "de", "ja": "ja", "zh": "zh-cn"}


def paragraphs(text: str):
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines()]
        if any(line.startswith(("$", "#", "*", "|", "+", "-", "http")) or re.match(r"^\d+(\.\d+)*\.? ", line)
               for line in lines):
            continue
        joined = lines[0] if lines else ""
        for line in lines[1:]:  # a wrapped CJK line continues without a space
            wide = joined and line and unicodedata.east_asian_width(joined[-1]) in "WF" \
                and unicodedata.east_asian_width(line[0]) in "WF"
            joined += ("" if wide else " ") + line
        yield joined


def prose(p: str, lang: str) -> bool:
    if not 120 <= len(p) <= 700 or re.search(r"[/\\<>{}=_`]|\.\.\.|\[\d+\]", p):
        return False
    letters = sum(ch.isalpha() for ch in p)
    if letters < 0.75 * len(p.replace(" ", "")):
        return False
    found = detect_langs(p)[0]
    return found.lang.split("-")[0] == lang and found.prob >= 0.99


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-language", type=int, default=8)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for lang, name in FILES.items():
        path = args.dir / "usr/share/debian-reference" / f"debian-reference.{name}.txt.gz"
        text = gzip.open(path, "rt", encoding="utf-8").read()
        kept = [p for p in paragraphs(text[len(text) // 20:]) if prose(p, lang)]  # past the table of contents
        step = max(1, len(kept) // args.per_language)
        chosen = kept[::step][: args.per_language]
        (args.out / f"{lang}.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")
        print(f"{lang}: {len(chosen)} of {len(kept)} prose paragraphs")


if __name__ == "__main__":
    main()
