"""modmt.train: corpora, base models, and the adapters of the modular method.

Builds on `modmt.runtime` (languages, prompt, fingerprints); needs torch and transformers only in
the modules that train or load models, which load on first use:

    from modmt.train import LoraSettings, TrainSettings, open_corpus, train_pool
"""
from modmt.runtime.lazy import lazy_attributes

_EXPORTS = {
    "open_corpus": "modmt.train.corpus", "Pool": "modmt.train.pool",
    "LoraSettings": "modmt.train.adapters", "train_pool": "modmt.train.adapters",
    "TrainSettings": "modmt.train.trainer", "train_full": "modmt.train.full",
    "learn_weights": "modmt.train.weight_learning", "fetch_model": "modmt.train.models",
    "resolve_model": "modmt.train.models",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes('modmt.train', _EXPORTS)
