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
