import pytest

from modmt.runtime.languages import load_registry


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Each test gets its own cache and no user languages file."""
    monkeypatch.setenv("MODMT_HOME", str(tmp_path / "modmt-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("MODMT_LANGUAGES", raising=False)


@pytest.fixture
def registry():
    return load_registry()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random tiny Qwen2 model + tokenizer, built once per test session (a few seconds)."""
    from modmt.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_pool(tmp_path_factory, tiny_model_dir):
    """A pool with adapters for all five languages (rank 4, trained enough to make distributions peaked), English's
    with the paper's recipe (en->en copies), which the tests' decoding scenarios were written against; the
    default recipe has a test of its own (tests/test_train.py)."""
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.corpus import open_corpus
    from modmt.train.tiny import write_tiny_corpus
    from modmt.train.trainer import TrainSettings

    root = tmp_path_factory.mktemp("shared-pool")
    registry = load_registry()
    corpus = open_corpus(write_tiny_corpus(root / "corpus"), registry)
    train_pool(tiny_model_dir, corpus, registry, ["en", "fr", "de", "ja", "zh"], root / "pool",
               LoraSettings(rank=4, alpha=8), TrainSettings(epochs=4, learning_rate=1e-2, batch_size=4, save_steps=1000),
               english="copy")
    return root / "pool"


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_pool):
    """ja->zh at 3:7, Setting 1, fp32, last-position logits."""
    from modmt.export.direction import ExportOptions, export_direction

    out = tmp_path_factory.mktemp("exports") / "ja-zh"
    export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7"), out, load_registry())
    return out


# Property-based tests: a few examples each in CI; `--hypothesis-profile long` for a thorough run.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", max_examples=15, deadline=None)
_hypothesis_settings.register_profile("long", max_examples=2000, deadline=None)
_hypothesis_settings.load_profile("ci")
