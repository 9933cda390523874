"""Build an out-of-domain test corpus from the translated messages installed software ships (.mo files).

DDTP's package descriptions are what the adapters train on. Programs' user-interface messages are
another register (short imperative sentences, errors, help texts) written by other translators, and
every Debian machine has them under /usr/share/locale/<locale>/LC_MESSAGES/<domain>.mo. A message is
aligned across languages by its English msgid within one domain; a message translated in every
requested language, that reads as a sentence (no format directives, markup, accelerators or line
breaks) and that no DDTP training pair contains, becomes one multiway segment. Segments are split
into dev and devtest by a hash of the msgid, like `modmt data ddtp`, so the set is the same on every
machine that has the same catalogs. The messages beyond the evaluation sets (by the same hash order, so
never a dev or devtest message) are a small train split of English-centric pairs: general-domain text
that training can mix in to keep the base model's general ability (`modmt-train adapters --mix-data`).
"""
import gettext
import hashlib
import json
import re
from pathlib import Path

from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import ENGLISH, Language

DEFAULT_LOCALE_DIR = Path("/usr/share/locale")
# Printf/Python/brace placeholders, shell-ish variables, markup, mnemonics and escapes: a message with
# any of them is a template, not a sentence, and a translation would be scored on its placeholders.
_TEMPLATE = re.compile(r"%[-+ #0-9.*]*[a-zA-Z(]|\{[^}]*\}|\$\w|<[^>]+>|[_&~][A-Za-z]|\\|\t|\n|\|")
_WORD = re.compile(r"[A-Za-z]{2,}")


def read_catalog(path: Path) -> dict[str, str]:
    """msgid -> msgstr of one .mo file, read with the standard library's gettext; plural and
    context entries and the header are left out (they do not align as plain sentences)."""
    try:
        with open(path, "rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog
    except (OSError, UnicodeDecodeError, ValueError) as e:  # a truncated or foreign-encoded catalog
        raise ModmtError(f"cannot read message catalog {path}: {e}") from None
    return {k: v for k, v in catalog.items() if isinstance(k, str) and k and "\x04" not in k}


def is_sentence(english: str, min_words: int, max_chars: int) -> bool:
    english = english.strip()
    return (len(english) <= max_chars and len(_WORD.findall(english)) >= min_words
            and not _TEMPLATE.search(english) and english[:1].isupper())


def aligned_messages(locale_dir: Path, languages: list[Language], min_words: int = 5,
                     max_chars: int = 200) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """{msgid: {code: text}} over the domains every non-English language has; the first domain (in
    name order) that holds a msgid gives its translations. Also returns how many came from each domain."""
    others = [lang for lang in languages if lang.code != ENGLISH]
    missing = [lang.code for lang in others if not lang.ddtp]
    if missing:
        raise ModmtError(f"no locale name for {', '.join(missing)}: add \"ddtp\" (e.g. zh_CN) for it in your "
                         "languages file")
    folders = {lang.code: locale_dir / lang.ddtp / "LC_MESSAGES" for lang in others}
    absent = [f"{code} ({folder})" for code, folder in folders.items() if not folder.is_dir()]
    if absent:
        raise ModmtError(f"no message catalogs for {', '.join(absent)}; install the language's translations "
                         "or pass --locale-dir")
    domains = sorted(set.intersection(*({p.name for p in folder.glob("*.mo")} for folder in folders.values())))
    messages: dict[str, dict[str, str]] = {}
    per_domain: dict[str, int] = {}
    for domain in domains:
        catalogs = {code: read_catalog(folder / domain) for code, folder in folders.items()}
        for msgid in sorted(set.intersection(*(set(c) for c in catalogs.values()))):
            if msgid in messages or not is_sentence(msgid, min_words, max_chars):
                continue
            row = {ENGLISH: msgid.strip()}
            for code, catalog in catalogs.items():
                text = catalog[msgid].strip()
                if not text or text == msgid.strip() or _TEMPLATE.search(text):
                    break  # untranslated (copied English) or a template in this language
                row[code] = text
            else:
                messages[msgid] = row
                per_domain[domain.removesuffix(".mo")] = per_domain.get(domain.removesuffix(".mo"), 0) + 1
    return messages, per_domain


def build_gettext_corpus(locale_dir: Path, languages: list[Language], out: Path, exclude: set[str] = frozenset(),
                         max_segments: int = 1000, force: bool = False) -> dict:
    """Write dev/<code>.txt and devtest/<code>.txt (half each by msgid hash, at most max_segments in
    all), train/en-<code>.tsv (the messages after those) and corpus.json. `exclude` holds texts (any
    language) that must not appear, e.g. another corpus' training pairs."""
    if out.exists() and not force:
        raise ModmtError(f"{out} exists; pass --force to rebuild it")
    messages, per_domain = aligned_messages(locale_dir, languages)
    rows = [row for row in messages.values() if not any(text in exclude for text in row.values())]
    excluded = len(messages) - len(rows)
    rows.sort(key=lambda row: hashlib.sha256(row[ENGLISH].encode()).hexdigest())
    rows, train_rows = rows[:max_segments], rows[max_segments:]
    if len(rows) < 20:
        raise ModmtError(f"only {len(rows)} messages are translated into every one of "
                         f"{', '.join(lang.code for lang in languages)} under {locale_dir}: too few to score; "
                         "drop a language or install more translations")
    splits = {"dev": rows[: len(rows) // 2], "devtest": rows[len(rows) // 2:]}
    info = {"source": f"gettext message catalogs under {locale_dir}", "languages": [l.code for l in languages],
            "dev": len(splits["dev"]), "devtest": len(splits["devtest"]), "train": len(train_rows),
            "excluded_as_training_text": excluded,
            "domains": dict(sorted(per_domain.items(), key=lambda kv: -kv[1]))}
    with atomic_directory(out) as tmp:
        for split, split_rows in splits.items():
            (tmp / split).mkdir()
            for lang in languages:
                (tmp / split / f"{lang.code}.txt").write_text("".join(r[lang.code] + "\n" for r in split_rows),
                                                              encoding="utf-8")
        if train_rows:
            (tmp / "train").mkdir()
            for lang in languages:
                if lang.code != ENGLISH:
                    (tmp / "train" / f"en-{lang.code}.tsv").write_text(
                        "".join(f"{r[ENGLISH]}\t{r[lang.code]}\n" for r in train_rows), encoding="utf-8")
        (tmp / "corpus.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return info
