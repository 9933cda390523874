"""Package attributes imported on first use, so that `import modmt.x` stays light (no torch, no onnxruntime)."""
import importlib


def lazy_attributes(package: str, exports: dict[str, str]):
    """A module-level __getattr__ that imports exports[name] (a module path) when `name` is first used."""
    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
