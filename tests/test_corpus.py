import pytest

from modmt.runtime.errors import ModmtError
from modmt.train.corpus import FloresCorpus, ModmtCorpus, open_corpus
from modmt.train.tiny import tiny_sentences, write_tiny_corpus


def write_flores(root, version, registry, rows=5):
    table = tiny_sentences()
    for split, part in (("dev", slice(0, rows)), ("devtest", slice(rows, 2 * rows))):
        (root / split).mkdir(parents=True)
        for code, lines in table.items():
            lang = registry.get(code)
            stem = lang.flores101 if version == 101 else lang.flores200
            (root / split / f"{stem}.{split}").write_text("\n".join(lines[part]) + "\n", encoding="utf-8")
    return root


def test_modmt_corpus_reads_pairs_and_segments(tmp_path, registry):
    corpus = open_corpus(write_tiny_corpus(tmp_path / "c"), registry)
    assert isinstance(corpus, ModmtCorpus)
    assert corpus.languages() == ["de", "en", "fr", "ja", "zh"]
    pairs = corpus.pairs("ja")
    assert len(pairs) == 16 and pairs[0] == ("The cat sleeps on the sofa.", "猫はソファで寝ています。")
    english = corpus.pairs("en")
    assert all(a == b for a, b in english) and len(english) == 16  # deduplicated across en-xx files
    table = corpus.multiway("devtest", ["en", "zh"])
    assert table["zh"][0] == "桌面环境的字体。" and len(table["en"]) == 4


@pytest.mark.parametrize("version, folder", [(101, "flores101_dataset"), (200, "flores200_dataset")])
def test_flores_layouts_load_through_the_same_interface(tmp_path, registry, version, folder):
    write_flores(tmp_path / folder, version, registry)
    corpus = open_corpus(tmp_path, registry)  # the parent folder is found too
    assert isinstance(corpus, FloresCorpus) and corpus.format == f"flores{version}"
    assert corpus.languages() == ["en", "fr", "de", "ja", "zh"]
    assert corpus.pairs("de")[1] == ("I drink coffee every morning.", "Ich trinke jeden Morgen Kaffee.")
    assert corpus.segments("devtest", "fr")[0] == tiny_sentences()["fr"][5]


def test_malformed_tsv_names_file_and_line(tmp_path, registry):
    root = write_tiny_corpus(tmp_path / "c")
    path = root / "train" / "en-fr.tsv"
    path.write_text("Hello\tBonjour\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(ModmtError, match=r"en-fr\.tsv:2: expected 2 tab-separated columns"):
        open_corpus(root, registry).pairs("fr")
    path.write_text("Hello\tBonjour\n\t\n", encoding="utf-8")
    with pytest.raises(ModmtError, match=r"en-fr\.tsv:2: empty English column"):
        open_corpus(root, registry).pairs("fr")


def test_invalid_utf8_names_the_line(tmp_path, registry):
    root = write_tiny_corpus(tmp_path / "c")
    (root / "train" / "en-de.tsv").write_bytes(b"Hello\tHallo\nCat\tK\xe4tzchen\n")
    with pytest.raises(ModmtError, match=r"en-de\.tsv:2: not valid UTF-8"):
        open_corpus(root, registry).pairs("de")


def test_misaligned_and_gappy_multiway_files(tmp_path, registry):
    root = write_flores(tmp_path / "flores", 200, registry)
    with open(root / "dev" / "fra_Latn.dev", "a", encoding="utf-8") as f:
        f.write("one line too many\n")
    with pytest.raises(ModmtError, match="not aligned"):
        open_corpus(root, registry).pairs("fr")
    (root / "dev" / "deu_Latn.dev").write_text("a\n\nb\n", encoding="utf-8")
    with pytest.raises(ModmtError, match=r"deu_Latn\.dev:2: empty line"):
        open_corpus(root, registry).segments("dev", "de")


def test_missing_data_errors_name_what_was_expected(tmp_path, registry):
    root = write_tiny_corpus(tmp_path / "c")
    (root / "train" / "en-zh.tsv").unlink()
    with pytest.raises(ModmtError, match=r"expected .*train/en-zh\.tsv"):
        open_corpus(root, registry).pairs("zh")
    (root / "train" / "en-ja.tsv").write_text("")
    with pytest.raises(ModmtError, match="no en-ja pairs"):
        open_corpus(root, registry).pairs("ja")
    with pytest.raises(ModmtError, match="unknown split"):
        open_corpus(root, registry).segments("test", "fr")
    with pytest.raises(ModmtError, match="neither a modmt corpus"):
        open_corpus(tmp_path, registry)
    with pytest.raises(ModmtError, match="not a directory"):
        open_corpus(tmp_path / "nope", registry)
