import gzip
import shutil

import pytest

from modmt.runtime.errors import ModmtError
from modmt.train import ddtp
from modmt.train.corpus import open_corpus
from modmt.train.ddtp import build_corpus, heldout_split, parse_translation


def record(md5, code, short, long="Long text.\n .\n Second paragraph."):
    body = "\n".join(" " + line.strip() for line in long.split("\n"))
    return f"Package: p-{md5}\nDescription-md5: {md5}\nDescription-{code}: {short}\n{body}\n"


def write_lists(root, data):
    """data: ddtp code -> {md5: short}; en written gzipped, like apt may store it."""
    root.mkdir(parents=True, exist_ok=True)
    for code, records in data.items():
        text = "\n".join(record(m, code, s) for m, s in records.items())
        name = f"deb.debian.org_debian_dists_bookworm_main_i18n_Translation-{code.replace('_', '%5f')}"
        if code == "en":
            (root / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (root / name).write_text(text, encoding="utf-8")
    return root


def sample_lists(root):
    md5s = [f"{i:032x}" for i in range(40)]
    en = {m: f"English text {i}" for i, m in enumerate(md5s)}
    en[md5s[39]] = "English text 0"  # same English under another md5 (e.g. a renamed package)
    fr = {m: f"Texte français {i}" for i, m in enumerate(md5s)}
    ja = {m: f"日本語 {i}" for i, m in enumerate(md5s[:20])}       # only 0..19 in ja
    zh = {m: f"中文 {i}" for i, m in enumerate(md5s[:10] + md5s[30:])}  # 0..9 and 30..39 in zh
    return write_lists(root, {"en": en, "fr": fr, "ja": ja, "zh_CN": zh})


def test_parse_translation_short_and_long():
    text = record("a" * 32, "ja", "短い説明", "一行目\n .\n 二行目") + "\n" + record("b" * 32, "ja", "別")
    parsed = parse_translation(text, "ja")
    assert parsed["a" * 32] == ("短い説明", "一行目 二行目")
    assert parsed["b" * 32][0] == "別"


def test_build_corpus_holds_out_multiway_records_without_leaks(tmp_path, registry):
    lists = sample_lists(tmp_path / "lists")
    langs = registry.parse_list("en,fr,ja,zh")
    counts = build_corpus(lists, langs, tmp_path / "corpus")
    corpus = open_corpus(tmp_path / "corpus", registry)
    held = corpus.segments("dev", "en") + corpus.segments("devtest", "en")
    # Four-way records are md5 0..9; the md5 39 duplicate of record 0's English is not held twice.
    assert sorted(held) == sorted(f"English text {i}" for i in range(10))
    assert counts["dev"] + counts["devtest"] == 10 and counts["dev"] > 0 and counts["devtest"] > 0
    for code in ("fr", "ja", "zh"):
        train_english = {e for e, _ in corpus.pairs(code)}
        assert not train_english & set(held), f"held-out text leaked into en-{code}"
    assert counts["train"] == {"en-fr": 29, "en-ja": 10, "en-zh": 9}  # zh: 30..38 (39 duplicates record 0)
    # Aligned: line i of every language is the same record.
    dev = corpus.multiway("dev", ["en", "fr", "ja", "zh"])
    for i, english in enumerate(dev["en"]):
        n = english.rsplit(" ", 1)[1]
        assert dev["fr"][i].endswith(f" {n}") and dev["ja"][i].endswith(f" {n}") and dev["zh"][i].endswith(f" {n}")


def test_split_is_deterministic_and_build_is_reproducible(tmp_path, registry):
    assert heldout_split("0" * 32) == heldout_split("0" * 32)
    lists = sample_lists(tmp_path / "lists")
    langs = registry.parse_list("en,fr,ja,zh")
    build_corpus(lists, langs, tmp_path / "a")
    build_corpus(lists, langs, tmp_path / "b")
    for rel in ("train/en-fr.tsv", "dev/en.txt", "devtest/zh.txt"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_long_descriptions_are_optional_training_pairs(tmp_path, registry):
    lists = sample_lists(tmp_path / "lists")
    langs = registry.parse_list("en,fr")
    short = build_corpus(lists, langs, tmp_path / "short")
    both = build_corpus(lists, langs, tmp_path / "long", include_long=True)
    assert short["train"]["en-fr"] < both["train"]["en-fr"]


def test_errors(tmp_path, registry, monkeypatch):
    lists = sample_lists(tmp_path / "lists")
    with pytest.raises(ModmtError, match="must include en"):
        build_corpus(lists, registry.parse_list("fr,ja"), tmp_path / "x")
    with pytest.raises(ModmtError, match="no Translation-de file"):
        build_corpus(lists, registry.parse_list("en,de"), tmp_path / "x")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ModmtError, match="--force"):
        build_corpus(lists, registry.parse_list("en,fr"), tmp_path / "exists")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ModmtError, match="apt-get is not available"):
        ddtp.fetch_translation_lists(tmp_path / "cache", registry.parse_list("en,fr"))
