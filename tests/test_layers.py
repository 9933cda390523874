"""The layers point one way: runtime <- train <- export <- benchmarks <- app, no torch in runtime.

Read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {  # stage folder -> the modmt packages its modules may import
    "runtime": {"runtime"},
    "train": {"runtime", "train"},
    "export": {"runtime", "train", "export"},
    "benchmarks": {"runtime", "train", "export", "benchmarks"},
    "app": {"runtime", "train", "export", "benchmarks", "app"},
}
NEVER_IN_RUNTIME = {"torch", "transformers", "peft", "optimum", "accelerate"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_each_stage_imports_only_the_layers_below_it(stage):
    modules = sorted((ROOT / stage).rglob("*.py"))
    assert modules, f"no modules in {stage}/"
    for module in modules:
        for name in imports(module):
            parts = name.split(".")
            if parts[0] == "modmt" and len(parts) > 1:
                assert parts[1] in ALLOWED[stage], f"{stage}/{module.name} imports {name}"
            if stage == "runtime":
                assert parts[0] not in NEVER_IN_RUNTIME, f"runtime/{module.name} imports {name}: the runtime is torch-free"


# Command-line modules: where click, process-wide settings and flag names belong.
COMMAND_LINE = {"cli.py", "server_cli.py", "options.py", "command_line.py", "demo.py"}
DOCUMENTED_ENVIRONMENT = {"MODMT_HOME", "MODMT_LANGUAGES"}  # locations, read where they are documented


def library_modules():
    return [m for stage in ALLOWED for m in sorted((ROOT / stage).rglob("*.py")) if m.name not in COMMAND_LINE]


def test_library_modules_take_parameters_not_click_or_the_environment():
    """Configuration at the edge: library code reports through logging (or a callback) and takes its switches
    as parameters; only command-line modules use click, and the environment names only documented locations."""
    for module in library_modules():
        source = module.read_text(encoding="utf-8")
        where = module.relative_to(ROOT)
        assert "click" not in {name.split(".")[0] for name in imports(module)}, f"{where} imports click"
        for variable in re.findall(r"\b(MODMT_[A-Z_]+)\b", source):
            assert variable in DOCUMENTED_ENVIRONMENT or f'"{variable}' not in source.replace("'", '"'), \
                f"{where} reads {variable} from the environment; take it as a parameter"
