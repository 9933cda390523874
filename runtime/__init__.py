"""modmt.runtime: the torch-free base layer.

Everything here runs with numpy, tokenizers, onnxruntime and click alone: the language registry,
the prompt format, model fingerprints and the command-line error contract. `modmt.train` and
`modmt.export` build on it; nothing here may import torch or transformers.
"""
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import Language, LanguageRegistry, load_registry
from modmt.runtime.prompt import PromptTemplate, instruction

__all__ = ["ModmtError", "Language", "LanguageRegistry", "load_registry", "PromptTemplate", "instruction"]
