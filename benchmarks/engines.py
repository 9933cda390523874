"""Translation engines behind one `translate(texts) -> list[str]` call, for side-by-side benchmarks.

modmt (this project's ONNX runtime), transformers `generate`, Optimum's ORTModelForCausalLM and
CTranslate2: each gets the same prompt ids (the shared PromptTemplate), the same beam size, the same
stop tokens and the same maximum length. An engine whose package is missing raises EngineMissing.
"""
import time
from pathlib import Path

from modmt.runtime.decoding import left_pad


class EngineMissing(Exception):
    """The engine's package is not installed; the benchmark skips it with a note."""


class ModmtEngine:
    name = "modmt"

    def __init__(self, export_dir: Path, provider: str = "auto", threads: int | None = None, ort_options=None):
        from modmt.runtime.ort_options import OrtOptions
        from modmt.runtime.translator import Translator

        self.translator = Translator(export_dir, provider=provider, threads=threads,
                                     ort_options=ort_options or OrtOptions())
        self.translator.pad_multiple  # probed here, so that it counts as loading, not as the first sentence
        self.precision = self.translator.manifest["quantization"] if self.translator.manifest["quantization"] != "none" \
            else self.translator.manifest["dtype"]

    def prompt_ids(self, text: str) -> list[int]:
        return self.translator.encode(text)[0]

    def translate(self, texts, beam, max_new_tokens, batch_size):
        return self.translator.translate(texts, beam=beam, max_new_tokens=max_new_tokens, batch_size=batch_size)

    def decode_count(self, text: str) -> int:
        return len(self.translator.tokenizer.encode(text, add_special_tokens=False).ids)


def generate_batches(generate, prompts, pad_id, batch_size):
    """Sort by length, generate batch by batch with left padding, return token lists in input order."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = left_pad([prompts[i] for i in chunk], pad_id)
        for i, out in zip(chunk, generate(ids, mask)):
            results[i] = out
    return results


class _GenerateEngine:
    """An engine whose model has transformers' `generate` (transformers itself, Optimum's ORT models)."""

    model = None
    reference: ModmtEngine

    def translate(self, texts, beam, max_new_tokens, batch_size):
        import torch

        t = self.reference.translator
        stops = sorted(t.stop_ids)

        def generate(ids, mask):
            with torch.no_grad():
                out = self.model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                          num_beams=beam, do_sample=False, max_new_tokens=max_new_tokens,
                                          eos_token_id=stops, pad_token_id=t.pad_id)
            return [[x for x in row[ids.shape[1]:].tolist() if x not in t.stop_ids] for row in out]

        prompts = [self.reference.prompt_ids(x) for x in texts]
        outputs = generate_batches(generate, prompts, t.pad_id, batch_size)
        return [t.tokenizer.decode(o, skip_special_tokens=True).strip() for o in outputs]


class TransformersEngine(_GenerateEngine):
    """transformers `generate` on a merged Hugging Face model directory (or an in-memory model)."""

    name = "transformers"

    def __init__(self, model_dir: Path, reference: ModmtEngine, model=None, threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        self.model = model if model is not None else AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        self.reference = reference
        self.precision = "fp32"


class OptimumEngine(_GenerateEngine):
    """Optimum's ORTModelForCausalLM.generate on an ONNX export of the same merged model."""

    name = "optimum"

    def __init__(self, onnx_dir: Path, reference: ModmtEngine):
        try:
            from optimum.onnxruntime import ORTModelForCausalLM
        except ImportError as e:
            raise EngineMissing(f"optimum[onnxruntime] is not installed ({e})") from None
        self.model = ORTModelForCausalLM.from_pretrained(onnx_dir, use_cache=True, use_io_binding=False,
                                                         provider="CPUExecutionProvider")
        self.reference = reference
        self.precision = "fp32"


class CTranslate2Engine:
    """CTranslate2's Generator on the merged model converted with its transformers converter."""

    name = "ctranslate2"

    def __init__(self, model_dir: Path, reference: ModmtEngine, work: Path, quantization: str = "float32",
                 threads: int | None = None):
        try:
            import ctranslate2
            from ctranslate2.converters import TransformersConverter
        except ImportError as e:
            raise EngineMissing(f"ctranslate2 is not installed ({e}); pip install ctranslate2") from None
        out = work / f"ct2-{quantization}"
        if not (out / "model.bin").exists():
            TransformersConverter(str(model_dir)).convert(str(out), quantization=quantization, force=True)
        self.generator = ctranslate2.Generator(str(out), device="cpu", compute_type=quantization,
                                               intra_threads=threads or 0)
        self.reference = reference
        self.precision = {"float32": "fp32", "int8": "int8", "int8_float32": "int8"}.get(quantization, quantization)

    def translate(self, texts, beam, max_new_tokens, batch_size):
        t = self.reference.translator
        prompts = [[t.tokenizer.id_to_token(i) for i in self.reference.prompt_ids(x)] for x in texts]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            outs = self.generator.generate_batch([prompts[i] for i in chunk], beam_size=beam,
                                                 max_length=max_new_tokens, include_prompt_in_result=False,
                                                 end_token=[t.tokenizer.id_to_token(s) for s in sorted(t.stop_ids)])
            for i, out in zip(chunk, outs):
                ids = [x for x in out.sequences_ids[0] if x not in t.stop_ids]
                results[i] = t.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return results


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
