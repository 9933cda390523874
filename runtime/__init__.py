"""modmt.runtime: the torch-free base layer.

Everything here runs with numpy, tokenizers, onnxruntime and click alone: the language registry,
the prompt format, model fingerprints, the export manifest, decoding and the command-line error
contract. `modmt.train` and `modmt.export` build on it; nothing here may import torch or
transformers.

    from modmt.runtime import Translator
    Translator("exports/ja-zh").translate(["猫はソファで寝ています。"])
"""
from modmt.runtime.errors import ModmtError
from modmt.runtime.lazy import lazy_attributes
from modmt.runtime.languages import Language, LanguageRegistry, load_registry
from modmt.runtime.prompt import PromptTemplate, instruction

__all__ = ["ModmtError", "Language", "LanguageRegistry", "load_registry", "PromptTemplate", "instruction",
           "Translator", "RoutedTranslator", "DecodeSettings", "translate_file"]

# Loaded on first use: `import modmt.runtime` stays light (no onnxruntime) for the CLI's --help.
__getattr__ = lazy_attributes("modmt.runtime", {"Translator": "modmt.runtime.translator",
                                                "RoutedTranslator": "modmt.runtime.routed_translator",
                                                "DecodeSettings": "modmt.runtime.decoding",
                                                "translate_file": "modmt.runtime.batch"})
