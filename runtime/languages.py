"""The language registry: codes, display names (used in the prompt) and corpus codes.

Built in: en, fr, de, ja, zh. A user adds or overrides languages without editing code through a
JSON file, read from (first found) the `path` argument, $MODMT_LANGUAGES, or
$XDG_CONFIG_HOME/modmt/languages.json (~/.config/modmt/languages.json):

    {"languages": [{"code": "ko", "name": "Korean",
                    "flores101": "kor", "flores200": "kor_Hang", "ddtp": "ko"}]}
"""
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from modmt.runtime.errors import ModmtError

ENGLISH = "en"  # the pivot: every adapter is trained on pairs with English on one side


@dataclass(frozen=True)
class Language:
    code: str              # what users type: `modmt-export ja zh`
    name: str              # what the prompt says: "Translate the following Japanese text ..."
    flores101: str | None  # file stem in FLORES-101: dev/jpn.dev
    flores200: str | None  # file stem in FLORES-200: dev/jpn_Jpan.dev
    ddtp: str | None       # Debian Translation-<ddtp> file (zh_CN for Chinese)


BUILTIN = [
    Language("en", "English", "eng", "eng_Latn", "en"),
    Language("fr", "French", "fra", "fra_Latn", "fr"),
    Language("de", "German", "deu", "deu_Latn", "de"),
    Language("ja", "Japanese", "jpn", "jpn_Jpan", "ja"),
    Language("zh", "Chinese", "zho_simpl", "zho_Hans", "zh_CN"),
]

_CODE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")


class LanguageRegistry:
    def __init__(self, languages: list[Language]):
        self._by_code = {lang.code: lang for lang in languages}

    @property
    def codes(self) -> list[str]:
        return list(self._by_code)

    def __contains__(self, code: str) -> bool:
        return code in self._by_code

    def get(self, code: str) -> Language:
        if code not in self._by_code:
            raise ModmtError(f"unknown language code {code!r}; known: {', '.join(self.codes)} "
                             "(add one in a languages file at $MODMT_LANGUAGES; see docs/concepts.md, Languages)")
        return self._by_code[code]

    def parse_list(self, text: str) -> list[Language]:
        """'en,fr, de' -> [en, fr, de]; unknown codes, duplicates and an empty list are errors."""
        codes = [c.strip() for c in text.split(",") if c.strip()]
        if not codes:
            raise ModmtError(f"empty language list {text!r}; give codes like en,fr,de")
        if len(set(codes)) != len(codes):
            raise ModmtError(f"language list {text!r} repeats a code; give each once")
        return [self.get(c) for c in codes]


def user_languages_file(path: str | os.PathLike | None = None) -> Path | None:
    if path:
        return Path(path)
    if os.environ.get("MODMT_LANGUAGES"):
        return Path(os.environ["MODMT_LANGUAGES"])
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidate = config / "modmt" / "languages.json"
    return candidate if candidate.exists() else None


def _read_user_languages(path: Path) -> list[Language]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModmtError(f"languages file {path} does not exist; fix MODMT_LANGUAGES or create it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModmtError(f"languages file {path} is not valid JSON ({e}); "
                         'expected {"languages": [{"code": ..., "name": ...}]}') from None
    entries = data.get("languages") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ModmtError(f'languages file {path} needs a top-level "languages" list')
    languages = []
    for i, entry in enumerate(entries):
        where = f"languages file {path}, entry {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("code"), str) or not entry.get("name"):
            raise ModmtError(f'{where}: each language needs at least "code" and "name"')
        unknown = set(entry) - {"code", "name", "flores101", "flores200", "ddtp"}
        if unknown:
            raise ModmtError(f"{where}: unknown field(s) {sorted(unknown)}; "
                             "allowed: code, name, flores101, flores200, ddtp")
        if not _CODE.match(entry["code"]):
            raise ModmtError(f"{where}: code {entry['code']!r} should look like 'ko' or 'pt-BR'")
        languages.append(Language(entry["code"], str(entry["name"]), entry.get("flores101"),
                                  entry.get("flores200"), entry.get("ddtp")))
    return languages


def load_registry(path: str | os.PathLike | None = None) -> LanguageRegistry:
    """The built-in languages plus (overridden by) the user's languages file, if any."""
    languages = {lang.code: lang for lang in BUILTIN}
    user_file = user_languages_file(path)
    if user_file is not None:
        for lang in _read_user_languages(user_file):
            languages[lang.code] = lang
    return LanguageRegistry(list(languages.values()))

