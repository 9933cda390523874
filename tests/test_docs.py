"""The guide stays a guide: README within 20 KB with the two commands, docs without a diary's words, and
every repository path the docs name exists (the site itself is built with `mkdocs build --strict` in CI)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TWO_COMMANDS = ("bash .ci/setup && .venv/bin/python -m pytest -q", "bash .ci/setup && .venv/bin/modmt demo")
# A path into the repository's own folders (or the package name someone might write instead of a folder).
REPO_PATH = re.compile(r"^(?:runtime|train|export|benchmarks|app|tests|docs|\.ci|modmt)/[\w./+-]*$")


def test_the_readme_is_a_short_guide_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 20 * 1024
    for command in TWO_COMMANDS:
        assert command in readme
    assert TWO_COMMANDS[0] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")  # CI runs the README's tests


def test_the_docs_read_as_a_reference_not_a_diary():
    for page in DOCS:
        text = page.read_text(encoding="utf-8").lower()
        for words in ("this session", "later session", "earlier session", "superseded"):
            assert words not in text, f"{page.relative_to(ROOT)} says {words!r}"


def named_paths(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    names = set(re.findall(r"`([^`\s]+)`", text))
    names |= {target for target in re.findall(r"\]\(([^)\s#]+)", text) if "://" not in target}
    return names


def test_every_path_the_docs_name_exists():
    missing = []
    for page in DOCS:
        for name in named_paths(page):
            path = name.split(":")[0].rstrip(".,;")  # runtime/cli.py:42 names a line of a file
            if REPO_PATH.match(path) and not any(c in path for c in "*{}<>") and not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {name}")
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(sorted(missing))
