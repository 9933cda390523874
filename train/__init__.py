"""modmt.train: corpora, base models, and the adapters of the modular method.

Builds on `modmt.runtime` (languages, prompt, fingerprints); needs torch and transformers only in
the modules that train or load models.
"""
