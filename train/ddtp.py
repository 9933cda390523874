"""Build a modmt corpus from Debian's translated package descriptions (DDTP).

apt fetches Translation-<lang> files; their records align across languages by Description-md5.
Records present in every requested language are held out, split deterministically by a hash of
their md5 into dev and devtest; every other record becomes English-centric training pairs. A
training pair never repeats a held-out segment's text, so nothing of devtest leaks into training.
"""
import gzip
import hashlib
import json
import lzma
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import ENGLISH, Language

APT_HELPER = "/usr/lib/apt/apt-helper"


def fetch_translation_lists(cache_dir: Path, languages: list[Language]) -> Path:
    """Run `apt-get update` into a private lists folder and return it."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise ModmtError("apt-get is not available here: `modmt data ddtp` needs a Debian/Ubuntu machine "
                         "(or pass --lists DIR with Translation-* files fetched elsewhere)")
    lists = cache_dir / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (cache_dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    codes = ",".join(lang.ddtp for lang in languages)
    cmd = [apt_get, "update", "-q",
           f"-oDir::State::Lists={lists}", f"-oDir::Cache={cache_dir / 'cache'}",
           f"-oAcquire::Languages={codes}", "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModmtError(f"apt-get update failed ({last}); check the network and apt sources, "
                         "or pass --lists DIR")
    return lists


def _read_list_file(path: Path) -> str:
    name = path.name
    if name.endswith(".gz"):
        return gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    if name.endswith(".xz"):
        return lzma.decompress(path.read_bytes()).decode("utf-8", "replace")
    if name.endswith((".lz4", ".zst", ".bz2")):
        if not os.path.exists(APT_HELPER):
            raise ModmtError(f"cannot decompress {path}: {APT_HELPER} is missing; pass uncompressed files")
        out = subprocess.run([APT_HELPER, "cat-file", str(path)], capture_output=True, check=False)
        if out.returncode != 0:
            raise ModmtError(f"cannot decompress {path}: {out.stderr.decode(errors='replace').strip()}")
        return out.stdout.decode("utf-8", "replace")
    return path.read_text(encoding="utf-8", errors="replace")


def parse_translation(text: str, ddtp_code: str) -> dict[str, tuple[str, str]]:
    """md5 -> (short description, long description as one line) from one Translation file."""
    records = {}
    field = f"Description-{ddtp_code}:"
    for block in text.split("\n\n"):
        md5, short, long_lines, in_description = None, None, [], False
        for line in block.split("\n"):
            if line.startswith("Description-md5:"):
                md5 = line.split(":", 1)[1].strip()
                in_description = False
            elif line.startswith(field):
                short = line[len(field):].strip()
                in_description = True
            elif in_description and line.startswith(" "):
                body = line.strip()
                long_lines.append("" if body == "." else body)
            else:
                in_description = False
        if md5 and short:
            records[md5] = (short, " ".join(x for x in long_lines if x))
    return records


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def load_descriptions(lists_dir: Path, languages: list[Language]) -> dict[str, dict[str, tuple[str, str]]]:
    """code -> md5 -> (short, long) from every Translation-<ddtp> file under lists_dir."""
    table = {}
    for lang in languages:
        files = sorted(p for p in lists_dir.iterdir()
                       if unquote(p.name).split("Translation-")[-1].split(".")[0] == lang.ddtp
                       and "Translation-" in p.name)
        if not files:
            raise ModmtError(f"no Translation-{lang.ddtp} file in {lists_dir}; "
                             "apt did not fetch that language (is it in Acquire::Languages?)")
        merged = {}
        for path in files:
            merged.update(parse_translation(_read_list_file(path), lang.ddtp))
        table[lang.code] = {md5: (_clean(s), _clean(l)) for md5, (s, l) in merged.items()}
    return table


def heldout_split(md5: str) -> str:
    """dev or devtest, by a hash of the record id: stable across runs and machines."""
    return "dev" if int(hashlib.sha256(md5.encode()).hexdigest(), 16) % 2 == 0 else "devtest"


def build_corpus(lists_dir: Path, languages: list[Language], out: Path,
                 include_long: bool = False, force: bool = False) -> dict:
    """Write a modmt corpus to `out` atomically; return the counts."""
    if ENGLISH not in [lang.code for lang in languages]:
        raise ModmtError("--langs must include en: DDTP records align through their English originals")
    if out.exists() and not force:
        raise ModmtError(f"{out} already exists; choose another --out or pass --force to replace it")
    table = load_descriptions(lists_dir, languages)
    codes = [lang.code for lang in languages]
    english = table[ENGLISH]

    # Held out: records translated into every language, with distinct English text.
    common = sorted(set(english).intersection(*(table[c] for c in codes)))
    heldout = {"dev": [], "devtest": []}
    seen_english = set()
    for md5 in common:
        text = english[md5][0]
        if text in seen_english:
            continue
        seen_english.add(text)
        heldout[heldout_split(md5)].append(md5)
    heldout_md5 = set(heldout["dev"]) | set(heldout["devtest"])
    heldout_text = {c: {table[c][m][0] for m in heldout_md5} for c in codes}

    train = {}
    for code in codes:
        if code == ENGLISH:
            continue
        pairs, seen = [], set()
        for md5 in sorted(set(english) & set(table[code])):
            if md5 in heldout_md5:
                continue
            candidates = [(english[md5][0], table[code][md5][0])]
            if include_long and english[md5][1] and table[code][md5][1]:
                candidates.append((english[md5][1], table[code][md5][1]))
            for en_text, xx_text in candidates:
                # Text-level guard: the same sentence under another md5 must not leak either.
                if en_text in heldout_text[ENGLISH] or xx_text in heldout_text[code]:
                    continue
                if (en_text, xx_text) not in seen and en_text and xx_text:
                    seen.add((en_text, xx_text))
                    pairs.append((en_text, xx_text))
        train[code] = pairs

    with atomic_directory(out) as tmp:
        (tmp / "train").mkdir()
        for code, pairs in train.items():
            (tmp / "train" / f"en-{code}.tsv").write_text(
                "".join(f"{e}\t{x}\n" for e, x in pairs), encoding="utf-8")
        for split, md5s in heldout.items():
            (tmp / split).mkdir()
            for code in codes:
                (tmp / split / f"{code}.txt").write_text(
                    "".join(table[code][m][0] + "\n" for m in md5s), encoding="utf-8")
        counts = {"train": {f"en-{c}": len(p) for c, p in train.items()},
                  "dev": len(heldout["dev"]), "devtest": len(heldout["devtest"]),
                  "languages": codes, "long_descriptions": include_long, "source": "Debian DDTP"}
        (tmp / "corpus.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts
