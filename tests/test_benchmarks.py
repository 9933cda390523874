"""Benchmarks on the tiny model: Table-1 layout and averages, caching and resume, engines, demo."""
import json

import pytest

from modmt.benchmarks.engines import EngineMissing
from modmt.benchmarks.table1 import Method, build_table, table1_methods, to_markdown
from modmt.runtime.languages import load_registry
from modmt.train.corpus import open_corpus


def test_table_layout_and_hand_computed_averages():
    methods = [Method("base", "Pre-train", "base"), Method("in", "LoRA_in", "1:0"), Method("out", "LoRA_out", "0:1"),
               Method("s1-3:7", "Setting 1 (3:7)", "3:7", 1)]
    results = {
        "base": {("en", "ja"): 10.0, ("ja", "en"): 20.0, ("ja", "zh"): 30.0, ("zh", "ja"): 40.0},
        "in": {("en", "ja"): 12.0, ("ja", "en"): 22.0, ("ja", "zh"): 30.0, ("zh", "ja"): 40.0},
        "out": {("en", "ja"): 14.0, ("ja", "en"): 18.0, ("ja", "zh"): 33.0, ("zh", "ja"): 41.0},
        "s1-3:7": {("en", "ja"): 15.0, ("ja", "en"): 21.0, ("ja", "zh"): 35.0, ("zh", "ja"): 39.0},
    }
    rows = build_table(results, methods, ["en", "ja", "zh"], {"in": 0.005, "out": 0.005, "s1-3:7": 0.01})
    merged = rows[3]["columns"]
    assert merged["ja→"] == pytest.approx((21.0 + 35.0) / 2)   # from ja: ja-en, ja-zh
    assert merged["→ja"] == pytest.approx((15.0 + 39.0) / 2)   # into ja: en-ja, zh-ja
    assert merged["en→"] == 15.0 and merged["→en"] == 21.0
    # Marked where it beats both single adapters: en→ 15 > 12, 14; ja→ 28 > 26, 25.5; →en 21 < 22: not.
    assert rows[3]["beats_both"] == {"en→": True, "ja→": True, "zh→": False, "→en": False, "→ja": False, "→zh": True}
    markdown = to_markdown(rows, ["en", "ja", "zh"])
    lines = markdown.splitlines()
    assert lines[0] == "| Method | %Params | en→ | ja→ | zh→ | →en | →ja | →zh |"
    assert lines[2].startswith("| Pre-train | - | 10.00 | 25.00 | 40.00 |")
    assert lines[5] == "| Setting 1 (3:7) | 1.00% | <u>15.00</u> | <u>28.00</u> | 39.00 | 21.00 | 27.00 | <u>35.00</u> |"
    assert [m.key for m in table1_methods(full=True, learned=True)][:4] == ["base", "full", "in", "out"]


def test_quality_run_caches_resumes_and_onnx_equals_torch(tmp_path, tiny_pool, monkeypatch):
    from modmt.benchmarks import quality

    corpus = open_corpus(tiny_pool.parent / "corpus", load_registry())
    kwargs = dict(split="devtest", directions=[("ja", "zh"), ("zh", "en")], limit=2, beam=2, max_new_tokens=6,
                  methods=["base", "in", "out", "s1-3:7", "s2-1:9"])
    onnx = quality.run_quality(tiny_pool, corpus, engine="onnx", out=tmp_path / "onnx", **kwargs)
    torch_run = quality.run_quality(tiny_pool, corpus, engine="torch", out=tmp_path / "torch", **kwargs)
    assert onnx["results"] == torch_run["results"]  # the deployed path scores exactly like the reference
    saved = json.loads((tmp_path / "onnx" / "results.json").read_text())
    assert saved["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:2")
    assert set(saved["scores"]["s2-1:9"]) == {"ja-zh", "zh-en"}
    assert (tmp_path / "onnx" / "results.csv").read_text().startswith("method,src,tgt,chrf++\n")

    # Resume: remove one cached cell; a rerun translates only that one.
    cache = next((tmp_path / "onnx" / "cache").iterdir())
    (cache / "ja-zh" / "out.json").unlink()
    calls = []
    original = quality.OnnxMethods.translate
    monkeypatch.setattr(quality.OnnxMethods, "translate",
                        lambda self, s, t, m, *a: calls.append((s, t, m.key)) or original(self, s, t, m, *a))
    again = quality.run_quality(tiny_pool, corpus, engine="onnx", out=tmp_path / "onnx", **kwargs)
    assert calls == [("ja", "zh", "out")]
    assert again["results"] == onnx["results"]
    cached = quality.run_quality(tiny_pool, corpus, engine="onnx", out=tmp_path / "onnx", **kwargs)  # all cached
    assert len(calls) == 1 and cached["signature"] == saved["signature"]


def test_latency_runs_engines_and_skips_missing_ones(tmp_path, tiny_export, monkeypatch):
    from modmt.benchmarks import latency

    def missing(*args, **kwargs):
        raise EngineMissing("ctranslate2 is not installed")

    monkeypatch.setattr(latency, "CTranslate2Engine", missing)
    segments = ["猫です。", "犬は雪の中を走ります。", "パン"]
    rows = latency.run_latency([tiny_export], segments, ["modmt", "transformers", "ctranslate2"], batch=2, beam=2,
                               max_new_tokens=5, work=tmp_path / "work", threads=1, provider="cpu")
    by_engine = {r["engine"]: r for r in rows}
    assert by_engine["ctranslate2"]["skipped"] == "ctranslate2 is not installed"
    assert by_engine["modmt"]["outputs"] == by_engine["transformers"]["outputs"]  # same model, same search
    for name in ("modmt", "transformers"):
        r = by_engine[name]
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["sentences_per_s"] > 0 and r["load_s"] > 0
    modmt = by_engine["modmt"]
    assert modmt["batch1_tokens_per_s"] > 0 and modmt["roofline_tokens_per_s"] > 0 and modmt["read_gb_per_s"] > 0
    markdown = latency.latency_markdown(rows, 2, 2, len(segments))
    assert "| ctranslate2 | fp32 | skipped: ctranslate2 is not installed" in markdown
    with pytest.raises(Exception, match="unknown engine"):
        latency.run_latency([tiny_export], segments, ["vllm"], 2, 2, 5, tmp_path / "w", 1, "cpu")


def test_roofline_counts_every_weight_but_the_gathered_embedding(tiny_export, tiny_model_dir):
    from safetensors.numpy import load_file

    from modmt.benchmarks.roofline import weight_bytes_per_token

    weights = load_file(tiny_model_dir / "model.safetensors")
    assert "lm_head.weight" not in weights  # tied: the table is gathered once and read in full as the head
    expected = sum(a.nbytes for a in weights.values())  # non-embedding weights + the head (= the table)
    measured = weight_bytes_per_token(tiny_export / "model.onnx")
    # Within 1%: a graph that folded a few norm weights into constants differs by bytes, one that
    # counted the table twice or skipped the head by a third.
    assert abs(measured - expected) <= 0.01 * expected, (measured, expected)


def test_demo_offline_runs_end_to_end_and_caches(tmp_path):
    """The first run in a fresh interpreter: the demo's own process must not import torch (training
    and exports run in child processes, and torch's ~0.35 GB would be held beside them)."""
    import subprocess
    import sys

    from modmt.app.demo import run_demo

    script = ("import json, sys; from pathlib import Path; from modmt.app.demo import run_demo; "
              f"run_demo(Path({str(tmp_path / 'demo')!r}), offline=True, quick=True, segments=2, beam=2); "
              "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'peft', 'optimum') if m in sys.modules)))")
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout.strip().splitlines()[-1]) == []
    # The children's progress (library modules log it) reaches the user's terminal as the parent's does.
    assert "in/ja: " in first.stderr and "exported ja->zh" in first.stderr, first.stderr[-2000:]
    report = json.loads((tmp_path / "demo" / "demo-report.json").read_text())
    assert report["toy"] and report["segments"] == 2
    assert 0 <= report["merged"]["chrf"] <= 100 and 0 <= report["base"]["chrf"] <= 100
    assert 0 < report["trainable_ratio"] < 1
    pool = json.loads((tmp_path / "demo" / "tiny-pool" / "pool.json").read_text())["adapters"]
    assert {a["train"]["micro_batch_size"] for a in pool.values()} == {4}  # the demo's memory settings
    assert {a["train"]["gradient_checkpointing"] for a in pool.values()} == {True}
    stamp = (tmp_path / "demo" / "tiny-exports" / "ja-zh" / "modmt.json").stat().st_mtime_ns
    again = run_demo(tmp_path / "demo", offline=True, quick=True, segments=2, beam=2)  # every step cached
    assert (tmp_path / "demo" / "tiny-exports" / "ja-zh" / "modmt.json").stat().st_mtime_ns == stamp
    assert again["merged"]["chrf"] == report["merged"]["chrf"]


def test_export_comparison_and_parity(tiny_export):
    from modmt.benchmarks.exports import compare_exports, logit_parity
    from modmt.benchmarks.quality import chrf_scorer

    sources, references = ["猫です。", "パン"], ["猫。", "面包。"]
    rows = compare_exports([tiny_export], sources, references, beam=2, batch=2, max_new_tokens=4, provider="cpu",
                           chrf=chrf_scorer())
    assert rows[0]["kind"] == "standalone" and rows[0]["quantization"] == "none" and rows[0]["mb"] > 0
    assert logit_parity(tiny_export, sources)["max_abs_diff"] < 1e-4


def test_plots_are_written_as_png(tmp_path):
    from modmt.benchmarks.plots import plot_heatmaps, plot_learned_weights, plot_quality_vs_speed

    (tmp_path / "pool" / "weights").mkdir(parents=True)
    (tmp_path / "pool" / "weights" / "ja-zh.json").write_text(json.dumps(
        {"src": "ja", "tgt": "zh", "layers": [{"w_in": 0.4, "w_out": 0.6}, {"w_in": 0.45, "w_out": 0.55}]}))
    (tmp_path / "results.json").write_text(json.dumps(
        {"languages": ["en", "ja"], "scores": {"in": {"en-ja": 12.0, "ja-en": 20.5}, "s1-3:7": {"en-ja": 13.0}}}))
    written = plot_learned_weights(tmp_path / "pool", tmp_path / "plots")
    written += plot_heatmaps(tmp_path / "results.json", tmp_path / "plots")
    written.append(plot_quality_vs_speed([{"label": "fp32", "chrf": 40.3, "sentences_per_s": 1.3},
                                          {"label": "int8", "chrf": 35.4, "sentences_per_s": 2.5}], tmp_path / "plots"))
    assert sorted(p.name for p in written) == ["heatmap_in.png", "heatmap_s1-3_7.png", "learned_weights.png",
                                               "quality_vs_speed.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_demo_phases_in_child_processes_raise_their_own_errors(tmp_path):
    """The demo trains and exports in spawned processes: a failure there is the same one-line error."""
    from modmt.app.demo import export_one, in_child_process
    from modmt.runtime.errors import ModmtError

    with pytest.raises(ModmtError, match="pool"):
        in_child_process(export_one, tmp_path / "no-pool", "3:7", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_released_base_is_exported_again_when_a_direction_needs_it(tmp_path, tiny_pool):
    """remove_base_exports deletes the model-sized shared base but keeps each direction's manifest: a later
    translate through a new runner (another stage, a resumed run) exports both again, same output."""
    from modmt.benchmarks.quality import OnnxMethods
    from modmt.benchmarks.table1 import Method
    from modmt.train.pool import Pool

    method = Method("s1-3:7", "Setting 1 (3:7)", "3:7", 1)
    texts = ["hello world", "a small web server"]
    first = OnnxMethods(Pool(tiny_pool), tmp_path, "cpu").translate("ja", "zh", method, texts, 1, 6, 2)
    OnnxMethods.remove_base_exports(tmp_path)
    assert (tmp_path / "exports" / "ja-zh" / "s1-3:7" / "modmt.json").exists()
    assert not (tmp_path / "exports" / "shared-base").exists()
    again = OnnxMethods(Pool(tiny_pool), tmp_path, "cpu").translate("ja", "zh", method, texts, 1, 6, 2)
    assert again == first and (tmp_path / "exports" / "shared-base" / "modmt.json").exists()


def test_off_target_shares_count_other_languages_source_language_copies_and_the_floor():
    from modmt.benchmarks.off_target import off_target_shares, pooled_shares

    en = "The package provides the command line tools for managing the network interfaces."
    fr = "Le paquet fournit les outils en ligne de commande pour gérer les interfaces réseau."
    de = "Das Paket stellt die Kommandozeilenwerkzeuge zur Verwaltung der Netzwerkschnittstellen bereit."
    shares = off_target_shares([fr, en, de, ""], [fr, fr, fr, de], "en", "fr", ["en", "fr", "de"],
                               sources=[en, en, en, en])
    assert shares == {"off_target": 0.75, "source_language": 0.25, "copies": 0.25, "reference_off_target": 0.25}
    cells = [{"src": "en", "tgt": "fr", "hypotheses": [fr, en], "references": [fr, fr]},
             {"src": "fr", "tgt": "de", "hypotheses": [de, de], "references": [de, de]}]
    pooled = pooled_shares(cells, ["en", "fr", "de"])
    assert pooled["off_target"] == 0.25 and pooled["copies"] is None and pooled["outputs"] == 4
