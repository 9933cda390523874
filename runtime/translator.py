"""`Translator`: load a direction export and translate lists of sentences (numpy + tokenizers + ONNX Runtime)."""
import time
from functools import cached_property
from pathlib import Path

from modmt.runtime.decoding import DecodeSettings, translate_texts
from modmt.runtime.errors import ModmtError
from modmt.runtime.manifest import read_manifest
from modmt.runtime.onnx_decoder import OnnxDecoder
from modmt.runtime.ort_options import OrtOptions
from modmt.runtime.prompt import PromptTemplate, clean_text
from modmt.runtime.resident_decoder import SearchDecoderMixin
from modmt.runtime.shared_fold import DIRECTION_KIND, folded_initializers, resolve_base
from modmt.runtime.target_guard import TargetGuard, export_languages, guarded_choice
from modmt.runtime.tuned_weights import read_tuned_weights


class Translator(SearchDecoderMixin):
    """One exported direction, ready to translate.

    provider: "auto" (CUDA if this ONNX Runtime has it, else CPU with a warning), "cuda", or "cpu".
    verify:   "full" checks every file's sha256 against the manifest, "size" only that files exist.
    """

    def __init__(self, export_dir: str | Path, provider: str = "auto", threads: int | None = None,
                 verify: str = "full", max_input_tokens: int = 512, ort_options: OrtOptions = OrtOptions()):
        from tokenizers import Tokenizer

        started = time.perf_counter()
        self.export_dir = Path(export_dir)
        self.manifest = read_manifest(self.export_dir, verify)
        try:  # a manifest edited by hand or from another version: a clear error, not a KeyError
            self.src, self.tgt = str(self.manifest["src"]), str(self.manifest["tgt"])
            model_dir, initializers = self.export_dir, None
            self.quantization_recipe = self.manifest.get("quantization_recipe")  # runtime/cpu_features.py checks it
            self.tuned = None
            if self.manifest.get("kind") == DIRECTION_KIND:  # the base lives elsewhere; fold our deltas at load
                model_dir, base = resolve_base(self.export_dir, self.manifest, verify)
                # with the weights modmt-tune chose for this direction, where the base records some
                self.tuned = read_tuned_weights(model_dir).get((self.src, self.tgt))
                folded = {**self.manifest, "weights": self.tuned[0].to_json()} if self.tuned else self.manifest
                initializers = folded_initializers(model_dir, base, folded)
                self.quantization_recipe = base.get("quantization_recipe")
            self.template = PromptTemplate.from_json(self.manifest["prompt"])
            self.stop_ids = {int(i) for i in self.manifest["stop_token_ids"]}
            self.pad_id = int(self.manifest["pad_token_id"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ModmtError(f"{self.export_dir / 'modmt.json'} is malformed ({type(e).__name__}: {e}); re-export "
                             "the direction with `modmt-export`") from None
        try:
            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as e:
            raise ModmtError(f"cannot load {model_dir / 'tokenizer.json'} ({str(e)[:120]}); re-export the "
                             "direction with `modmt-export`") from None
        self.max_input_tokens = max_input_tokens
        self.decoder = OnnxDecoder(str(model_dir / "model.onnx"), provider, threads, initializers, ort_options)
        ids = [*self.template.prefix_ids, *self.template.suffix_ids, self.template.end_of_turn_id, *self.stop_ids,
               self.pad_id]
        vocab = self.decoder.vocab_size or self.tokenizer.get_vocab_size()
        if any(not 0 <= i < vocab for i in ids):
            raise ModmtError(f"{self.export_dir / 'modmt.json'} holds token ids outside the model's vocabulary "
                             f"({vocab}); re-export the direction with `modmt-export`")
        self._resident = None
        self.load_seconds = time.perf_counter() - started


    def encode(self, text: str) -> tuple[list[int], int]:
        """Prompt ids for one line, with the source cut to max_input_tokens; also the uncut length."""
        body = self.tokenizer.encode(clean_text(text), add_special_tokens=False).ids
        return self.template.wrap(body[: self.max_input_tokens]), len(body)

    def translate(self, texts: list[str], settings: DecodeSettings | None = None, on_truncate=None,
                  **choices) -> list[str]:
        """One translation per input, in order; an empty or blank input gives an empty output.

        settings: a DecodeSettings (default: beam 5, 256 new tokens, batches of 8); choices replace
        its fields, e.g. translate(texts, beam=1, max_new_tokens=64).
        """
        settings = DecodeSettings.of(settings, **choices)
        choose = guarded_choice(self.guard, texts, lambda i: self.tgt) if settings.guard else None
        return translate_texts(texts, lambda i: self.encode(texts[i]), lambda chunk: self.search_decoder,
                               self.tokenizer, self.stop_ids, self.pad_id, settings, self.max_input_tokens,
                               on_truncate, self.pad_multiple, choose)

    @cached_property
    def guard(self) -> TargetGuard:
        """The target-language guard over the export's languages (runtime/target_guard.py), made on first use."""
        return TargetGuard(export_languages(self.manifest))

    def probe(self, texts: tuple[str, ...]):
        """The decoder and prompts that runtime/join_alignment.py probes this translator with (pad_multiple)."""
        return self.search_decoder, [self.encode(text)[0] for text in texts]
