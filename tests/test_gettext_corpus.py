import struct

import pytest
from click.testing import CliRunner

from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry
from modmt.train.cli import data_group
from modmt.train.corpus import open_corpus
from modmt.train.gettext_corpus import build_gettext_corpus, is_sentence, read_catalog

LOCALES = {"fr": "fr", "ja": "ja", "zh": "zh_CN"}


def write_mo(path, messages: dict[str, str]):
    """A GNU .mo file (the format msgfmt writes): header entry, sorted keys, no hash table."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    start = 7 * 4 + 16 * len(keys)
    offsets, blob = [], b""
    for data in ids + strs:
        offsets.append((len(data), start + len(blob)))
        blob += data + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    tables = b"".join(struct.pack("<2I", *o) for o in offsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + tables + blob)


def sentence(i):
    return f"The program could not open file number {i} for reading."


def make_locale(root, n=30):
    """n good messages in domain a.mo; templates, an untranslated one and a ja-less one beside them."""
    for code, locale in LOCALES.items():
        msgs = {sentence(i): f"[{code}] phrase {i}." for i in range(n)}
        msgs["Cannot open %s for reading at all."] = f"[{code}] %s"            # template
        msgs["Save the _file before you go away."] = f"[{code}] save"          # mnemonic
        msgs["Nothing was translated in this message here."] = (
            "Nothing was translated in this message here." if code == "fr" else f"[{code}] rien")
        if code != "ja":
            msgs["Only two languages translated this one message."] = f"[{code}] deux"
        write_mo(root / locale / "LC_MESSAGES" / "a.mo", msgs)
        # a second domain repeats message 0 with another translation: the first domain (by name) wins
        write_mo(root / locale / "LC_MESSAGES" / "b.mo", {sentence(0): f"[{code}] other", "Short one.": "x"})
    return root


def languages(codes="en,fr,ja,zh"):
    return load_registry().parse_list(codes)


def test_catalog_reads_like_msgfmt_wrote_it(tmp_path):
    write_mo(tmp_path / "x.mo", {"Hello there": "Bonjour", "Café au lait, s'il vous plaît": "コーヒー"})
    assert read_catalog(tmp_path / "x.mo") == {"Hello there": "Bonjour", "Café au lait, s'il vous plaît": "コーヒー"}
    (tmp_path / "bad.mo").write_bytes(b"not a catalog")
    with pytest.raises(ModmtError, match="cannot read message catalog"):
        read_catalog(tmp_path / "bad.mo")


def test_only_sentences_count():
    assert is_sentence("The program could not open the file.", 5, 200)
    assert not is_sentence("Cannot open %s for reading at all.", 5, 200)
    assert not is_sentence("Cannot open {path} for reading at all.", 5, 200)
    assert not is_sentence("Save the _file before you go away.", 5, 200)
    assert not is_sentence("Use <b>bold</b> text in all the labels.", 5, 200)
    assert not is_sentence("Too short here.", 5, 200)
    assert not is_sentence("lowercase start is an option name or a flag", 5, 200)


def test_corpus_aligns_by_msgid_and_splits_by_hash(tmp_path):
    root = make_locale(tmp_path / "locale")
    info = build_gettext_corpus(root, languages(), tmp_path / "c", exclude={"[fr] phrase 3."})
    assert (info["dev"], info["devtest"]) == (14, 15)  # 30 good messages, one excluded as training text
    assert info["excluded_as_training_text"] == 1 and info["domains"] == {"a": 30}
    corpus = open_corpus(tmp_path / "c", load_registry())
    rows = []
    for split in ("dev", "devtest"):
        table = corpus.multiway(split, ["en", "fr", "ja", "zh"])
        rows += list(zip(table["en"], table["fr"], table["ja"], table["zh"]))
    assert len(rows) == 29
    for en, fr, ja, zh in rows:  # every language's line is the same message's translation
        i = int(en.split("number ")[1].split()[0])
        assert (fr, ja, zh) == (f"[fr] phrase {i}.", f"[ja] phrase {i}.", f"[zh] phrase {i}.")
    assert sentence(3) not in [r[0] for r in rows]
    # --max-segments 20: the other 9 messages are the train split, none of them a dev or devtest message
    info = build_gettext_corpus(root, languages(), tmp_path / "small", exclude={"[fr] phrase 3."}, max_segments=20)
    assert (info["dev"], info["devtest"], info["train"]) == (10, 10, 9)
    small = open_corpus(tmp_path / "small", load_registry())
    evaluated = set(small.segments("dev", "en") + small.segments("devtest", "en"))
    for code in ("fr", "ja", "zh"):
        pairs = small.pairs(code)
        assert len(pairs) == 9 and not evaluated & {english for english, _ in pairs}
        assert all(text == f"[{code}] phrase {english.split('number ')[1].split()[0]}." for english, text in pairs)
    assert info["train"] + 20 == 29 and not (tmp_path / "c" / "train").exists()  # 1000 > 29: no train split
    # the same catalogs give the same split on any machine
    build_gettext_corpus(root, languages(), tmp_path / "again", exclude={"[fr] phrase 3."})
    assert (tmp_path / "again" / "devtest" / "en.txt").read_text() == (tmp_path / "c" / "devtest" / "en.txt").read_text()
    with pytest.raises(ModmtError, match="exists; pass --force"):
        build_gettext_corpus(root, languages(), tmp_path / "c")


def test_errors_are_one_line(tmp_path):
    root = make_locale(tmp_path / "locale", n=10)
    with pytest.raises(ModmtError, match="only 10 messages .* too few"):
        build_gettext_corpus(root, languages(), tmp_path / "c")
    with pytest.raises(ModmtError, match=r"no message catalogs for de \("):
        build_gettext_corpus(root, languages("en,fr,de"), tmp_path / "c")


def test_cli_excludes_a_training_corpus(tmp_path):
    root = make_locale(tmp_path / "locale")
    train = tmp_path / "ddtp" / "train"
    train.mkdir(parents=True)
    (train / "en-fr.tsv").write_text(f"{sentence(5)}\tUne phrase.\n")
    result = CliRunner().invoke(data_group, ["gettext", "--langs", "en,fr,ja,zh", "--out", str(tmp_path / "c"),
                                             "--locale-dir", str(root), "--exclude-corpus", str(tmp_path / "ddtp")])
    assert result.exit_code == 0, result.output
    assert "dev 14, devtest 15 segments x 4 languages, train 0 pairs" in result.output and "1 left out" in result.output
