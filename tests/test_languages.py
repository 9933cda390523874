import json

import pytest

from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry


def test_builtin_languages_and_corpus_codes(registry):
    assert registry.codes == ["en", "fr", "de", "ja", "zh"]
    zh = registry.get("zh")
    assert (zh.name, zh.flores101, zh.flores200, zh.ddtp) == ("Chinese", "zho_simpl", "zho_Hans", "zh_CN")
    assert registry.get("ja").flores200 == "jpn_Jpan"


def test_unknown_code_lists_the_known_ones(registry):
    with pytest.raises(ModmtError, match=r"unknown language code 'xx'; known: en, fr, de, ja, zh"):
        registry.get("xx")


def test_user_added_language_from_env_file(tmp_path, monkeypatch):
    path = tmp_path / "langs.json"
    path.write_text(json.dumps({"languages": [
        {"code": "ko", "name": "Korean", "flores101": "kor", "flores200": "kor_Hang", "ddtp": "ko"},
        {"code": "fr", "name": "Français"}]}))
    monkeypatch.setenv("MODMT_LANGUAGES", str(path))
    registry = load_registry()
    assert registry.get("ko").flores200 == "kor_Hang"
    assert registry.get("fr").name == "Français"  # a user file may override a built-in
    assert [lang.code for lang in registry.parse_list("en, ko")] == ["en", "ko"]


def test_user_file_in_config_dir_is_found(tmp_path, monkeypatch):
    (tmp_path / "config" / "modmt").mkdir(parents=True)
    (tmp_path / "config" / "modmt" / "languages.json").write_text('{"languages": [{"code": "es", "name": "Spanish"}]}')
    assert load_registry().get("es").name == "Spanish"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"langs": []}', 'top-level "languages" list'),
    ('{"languages": [{"code": "ko"}]}', 'at least "code" and "name"'),
    ('{"languages": [{"code": "Korean!", "name": "Korean"}]}', "should look like"),
    ('{"languages": [{"code": "ko", "name": "Korean", "flores": "kor"}]}', "unknown field"),
])
def test_malformed_languages_file(tmp_path, content, message):
    path = tmp_path / "langs.json"
    path.write_text(content)
    with pytest.raises(ModmtError, match=message):
        load_registry(path)


def test_language_list_errors(registry):
    with pytest.raises(ModmtError, match="repeats"):
        registry.parse_list("en,fr,en")
    with pytest.raises(ModmtError, match="empty language list"):
        registry.parse_list(" , ")
