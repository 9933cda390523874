"""`modmt-bench reproduce` end to end on the tiny kit, its resume, the pooled English recipe and the bootstrap."""
import json

import numpy as np
import pytest

from modmt.runtime.languages import load_registry
from modmt.train.corpus import open_corpus


def test_a_best_learning_rate_at_the_grid_edge_gets_one_step_beyond():
    from modmt.benchmarks.reproduce import step_beyond_edge

    grid = [2e-5, 5e-5, 1e-4]
    assert step_beyond_edge(grid, {2e-5: 41.9, 5e-5: 37.3, 1e-4: 33.4}) == 8e-6     # low edge: / 2.5
    assert step_beyond_edge(grid, {2e-5: 30.0, 5e-5: 37.3, 1e-4: 38.0}) == 2e-4     # high edge: x 2
    assert step_beyond_edge(grid, {2e-5: 30.0, 5e-5: 39.0, 1e-4: 38.0}) is None     # bracketed
    assert step_beyond_edge([3e-4, 1e-3, 3e-3], {3e-4: 1.0, 1e-3: 2.0, 3e-3: 3.0}) == 9e-3


def test_reproduce_end_to_end_resumes_and_reports(tmp_path, tiny_model_dir):
    from modmt.benchmarks import reproduce as rp
    from modmt.train.tiny import write_tiny_corpus

    corpus = write_tiny_corpus(tmp_path / "corpus")
    work = tmp_path / "work"
    # A test set from another domain: the toy corpus' devtest in reverse order (plumbing, not a domain).
    ood = write_tiny_corpus(tmp_path / "ood")
    for path in (ood / "devtest").glob("*.txt"):
        path.write_text("".join(reversed(path.read_text().splitlines(keepends=True))))
    # A first run stopped after full fine-tuning, as at the end of a working session.
    rp.reproduce(str(tiny_model_dir), corpus, "tiny", work, provider="cpu", stop_after="full", ood=ood)
    stages = json.loads((work / "stages.json").read_text())
    assert [k for k, v in stages.items() if v["done"]] == ["corpus", "tune", "adapters", "tune-base", "pooled-en",
                                                           "full", "evidence"]
    assert not (work / "quality").exists()
    # The tuning search: equal trials per side, every trial scored on the dev split, the best chosen,
    # and its choices train the rest (full FT and the pooled pool are the chosen trials themselves).
    tune = json.loads((work / "tune" / "trials.json").read_text())
    profile = rp.PROFILES["tiny"]
    grid = [("full", lr) for lr in profile.full_lr_trials] + [("adapters", lr) for lr in profile.adapter_lr_trials]
    assert [(t["side"], t["lr"]) for t in tune["trials"]][:4] == grid and not any(t["beyond_grid"] for t in tune["trials"][:4])
    # A grid of two always has its best at an edge: each side got one trial a grid step beyond it.
    for side in ("full", "adapters"):
        scores = {t["lr"]: t["dev_chrf"] for t in tune["trials"][:4] if t["side"] == side}
        beyond = [t for t in tune["trials"][4:] if t["side"] == side]
        assert [t["lr"] for t in beyond] == [rp.step_beyond_edge(list(scores), scores)] and beyond[0]["beyond_grid"]
        best = max((t for t in tune["trials"] if t["side"] == side), key=lambda t: t["dev_chrf"])
        assert tune["chosen"][side] == best["lr"]
    assert tune["budget"]["trials"] == {"full": 3, "adapters": 3} and tune["budget"]["grid_trials_per_side"] == 2
    assert not list((work / "tune" / "onnx").glob("*/exports/*-base"))  # a scored trial's model-sized export is gone
    dev_cells = sorted((work / "tune" / "quality").glob("*/dev-*/*/*.json"))  # six trials and the base
    assert len(dev_cells) == 20 * 7 and all(json.loads(c.read_text())["n"] == 3 for c in dev_cells)
    base_dev = [json.loads(c.read_text()) for c in dev_cells if c.parts[-4] == "base"]
    assert len(base_dev) == 20 and {c["method"] for c in base_dev} == {"base"}
    assert stages["tune-base"]["result"]["dev_chrf"] == round(sum(c["chrf"] for c in base_dev) / 20, 4)
    chosen_pool = work / "tune" / f"adapters-lr{tune['chosen']['adapters']:g}"
    main_meta = json.loads((work / "pool" / "pool.json").read_text())
    assert main_meta["english_adapters"] == "copy" and main_meta["adapters"]["out/en"]["direction"] == "en-en"
    assert main_meta["adapters"]["in/fr"] == json.loads((chosen_pool / "pool.json").read_text())["adapters"]["in/fr"]

    # With --ood, each trial was also scored out of domain as soon as its dev cells were, while its model
    # was there (so a new machine need not retrain it for the ood-trials stage).
    assert len(list((work / "quality-ood-trials").glob("*/*/*/*.json"))) == len(tune["trials"]) * 8
    evidence = tmp_path / "evidence"
    report = rp.reproduce(str(tiny_model_dir), corpus, "tiny", work, provider="cpu", ood=ood, evidence=evidence)
    text = (evidence / "report.md").read_text()
    for section in ("## Table 1", "gain ratio", "## The paper's findings, here", "## Our aim", "## Tuning on the dev split",
                    "## Stages", "## Where the method stops", "## Out of the training domain",
                    "## Learning rate and general ability"):
        assert section in text
    assert text.count("**(chosen)**") == 2 and text.count("*(beyond the grid)*") == 2
    assert (f"Learning rates: the dev search's choices below, full fine-tuning {tune['chosen']['full']:g} and the "
            f"adapters {tune['chosen']['adapters']:g}, train every row") in text
    base_dev_chrf = stages["tune-base"]["result"]["dev_chrf"]
    assert f"| base (no training) | - | {base_dev_chrf:.2f} | Pre-train | 3 × 20 | 0 | - |" in text
    for side in ("full", "adapters"):
        best = max(t["dev_chrf"] for t in tune["trials"] if t["side"] == side)
        assert f"The {side} side's best is {best - base_dev_chrf:+.2f} chrF++ against the untrained base" in text
    assert "Budget: a grid of 2 learning rates for each side, plus one trial beyond the edge for full and " \
           "adapters (3 full, 3 adapters trials)" in text
    assert "LoRA_out > LoRA_in on average:" in text and "Setting 1 (learned)" in text
    # The 70 % verdict: each recipe's best merged row, in domain and the same row out of it.
    aim = text.split("## Merged ≥ 70% of full fine-tuning's gain, per recipe and domain")[1].split("\n## ")[0]
    aim_rows = [line.split(" | ") for line in aim.splitlines() if line.startswith(("| paper's", "| pooled"))]
    assert [(r[0], r[2]) for r in aim_rows] == [("| paper's", "in domain"), ("| paper's", "out of domain"),
                                                 ("| pooled", "in domain"), ("| pooled", "out of domain")]
    assert aim_rows[0][1] == aim_rows[1][1] and aim_rows[2][1] == aim_rows[3][1] and "pooled en" in aim_rows[2][1]
    verdicts = {"holds", "does not hold", "holds on the point estimate; the interval also holds less",
                "does not hold on the point estimate; the interval reaches it",
                "no verdict: full fine-tuning does not gain over the base here"}
    assert all(r[-2].strip(" |*") in verdicts for r in aim_rows)
    for r in aim_rows:  # row − full FT is (row − base) − (full FT − base), to the rounding of each
        full_gain, gain, against_full = (float(r[i].split(" [")[0].replace("−", "-")) for i in (3, 4, 5))
        assert abs(against_full - (gain - full_gain)) <= 0.015, r
    # Out of domain, the same arithmetic per row, and a gain ratio only where full FT's gain is above zero.
    ood_table = text.split("## Out of the training domain")[1].split("\n## ")[0]
    ood_rows = [line.strip("| ").split(" | ") for line in ood_table.splitlines() if line.startswith("| ") and "[" in line]
    number = lambda cell: float(cell.split(" [")[0].replace("−", "-"))  # noqa: E731
    full_row = next(r for r in ood_rows if r[0].startswith("Full-parameter"))
    full_low = {d: float(full_row[i].split("[")[1].split(",")[0]) for d, i in (("in", 1), ("out", 2))}
    for r in ood_rows:
        if r is full_row:
            continue
        for d, base_i, full_i, ratio_i in (("in", 1, 3, 5), ("out", 2, 4, 6)):
            assert abs(number(r[full_i]) - (number(r[base_i]) - number(full_row[base_i]))) <= 0.015, r
            assert (r[ratio_i].strip() == "-") == (full_low[d] <= 0), r
    assert "Full-parameter fine-tuning | 100%" in text and "pooled en †" in text
    cells = sorted((work / "quality").glob("*/*/*/*.json"))
    # 20 directions x (base, in, out, full, learned, 1:9 of both settings) on the headline sample, x the 8
    # ratios on the smaller one, the best ratio of each setting on the headline sample where it is not
    # 1:9, and the pooled recipe's same rows (in, out, learned, 8 ratios) x the 8 directions with English.
    best = json.loads((work / "stages.json").read_text())["quality"]["result"]["best_ratio"]
    assert len(cells) == 20 * 7 + 20 * 8 + 20 * sum(r != "1:9" for r in best.values()) + 11 * 8
    assert len(list((chosen_pool / "weights").glob("*.json"))) == 8  # pooled learned weights: English's directions
    # Out of domain: base, full, in, out, learned and each setting's best ratio on 20 directions, and the
    # pooled recipe's five headline rows on the 8 with English.
    assert len(list((work / "quality-ood").glob("*/*/*/*.json"))) == 7 * 20 + 5 * 8
    # Every tuning trial's row out of domain on the 8 directions with English, none left "not scored".
    assert len(list((work / "quality-ood-trials").glob("*/*/*/*.json"))) == len(tune["trials"]) * 8
    # Weaker merges (weights summing to 0.5 and 0.75) of the pooled recipe's best Setting-1 row, in domain
    # and out of it, on the 8 directions with English; the report puts them beside the plain merge.
    for folder in ("quality-scale", "quality-ood-scale"):
        scaled = sorted((work / folder).glob("pooled/*/*/*.json"))
        assert len(scaled) == 2 * 8 and {p.stem.split("@")[1] for p in scaled} == {"0.5", "0.75"}
    assert "## Weaker merges and general ability" in text
    # Mixing general-domain pairs (the out-of-domain corpus' train split) into the pooled recipe's training:
    # its own pool, a quarter of every adapter's pairs from the other corpus, scored in and out of domain.
    mixed_pool = json.loads((work / "pool-mixed" / "pool.json").read_text())["adapters"]
    assert len(mixed_pool) == 10 and all(a["mixed_in"]["share"] == rp.MIX_SHARE and a["mixed_in"]["pairs"] > 0
                                         for a in mixed_pool.values())
    for folder in ("quality-mix", "quality-ood-mix"):
        assert len(list((work / folder).glob("pool-mixed/*/*/*.json"))) == 8
    mix_section = text.split("## Mixing general-domain pairs into training")[1].split("## ")[0]
    assert "| training domain only | " in mix_section and "| 25% general-domain pairs mixed in | " in mix_section
    assert "(not scored yet)" not in mix_section
    assert [line.split(" | ")[0] for line in text.split("## Weaker merges")[1].split("\n## ")[0].splitlines()
            if line.startswith("| ") and line[2:3].isdigit()] == ["| 1", "| 0.75", "| 0.5"]
    assert "(not scored yet)" not in text and not list((work / "onnx").glob("tune-*/exports/*-base"))
    assert (evidence / "plots" / "learned_weights.png").exists() and (evidence / "plots" / "gap_vs_data.png").exists()
    assert report.endswith("report.md")

    # The evidence alone rebuilds the report byte for byte, somewhere the work folder is not, and every
    # cell re-scores to its recorded chrF++ and says where it came from.
    import shutil

    from modmt.benchmarks.evidence import rescore
    from modmt.benchmarks.report import update_document, write_report

    moved = tmp_path / "clone" / "results" / "table1-tiny"
    shutil.copytree(evidence, moved, ignore=shutil.ignore_patterns("report.*", "plots", "results.json"))
    assert not list(moved.rglob("*.safetensors")) and not list(moved.rglob("*.onnx"))
    write_report(moved)
    assert (moved / "report.md").read_text() == text
    committed = sorted(moved.glob("quality*/*/*/*/*.json")) + sorted(moved.glob("tune/quality/*/*/*/*.json"))
    # + the dev cells of every tuning trial, and each trial out of domain
    assert len(committed) == (len(cells) + 7 * 20 + 5 * 8 + 20 * len(tune["trials"]) + 8 * len(tune["trials"])
                              + 2 * 2 * 8 + 20 + 2 * 8)  # + the base on the dev segments, + the mixed pool
    for path in committed[::17]:
        cell = json.loads(path.read_text())
        assert abs(rescore(cell) - cell["chrf"]) < 1e-9
        assert cell["segments"]["ids"] == list(range(cell["n"])) and cell["command"].startswith("modmt-bench reproduce --profile tiny --workdir")
        assert cell["fingerprints"]["base_model"] and cell["chrf_signature"].startswith("nrefs:1")
        if cell["method"] not in ("base", "full"):
            assert all(cell["fingerprints"]["adapters"].values()) and cell["fingerprints"]["export_manifest"]
    for path in sorted(moved.glob("quality-ood-trials/tune-full-*/*/*/full.json"))[:2]:  # the trial's own model
        assert json.loads(path.read_text())["fingerprints"]["full_model"]
    document = tmp_path / "clone" / "docs" / "results.md"
    document.parent.mkdir()
    document.write_text(f"# Results\n\n<!-- report: {moved.as_posix()} -->\nSTALE-BLOCK\n<!-- /report: {moved.as_posix()} -->\nafter\n")
    update_document(document, moved)
    rebuilt = document.read_text()
    assert "STALE-BLOCK" not in rebuilt and rebuilt.endswith("after\n") and "#### Table 1" in rebuilt
    # The plots are copied beside the document (a docs site sees only its own folder) and linked there.
    assert "](img/table1-tiny/learned_weights.png)" in rebuilt
    assert (document.parent / "img" / "table1-tiny" / "learned_weights.png").read_bytes() == \
        (moved / "plots" / "learned_weights.png").read_bytes()

    # Resume: a cell lost (a kill mid-stage) is the only thing recomputed.
    pooled = json.loads((chosen_pool / "pool.json").read_text())
    assert pooled["english_adapters"] == "pooled"
    assert pooled["adapters"]["out/en"]["direction"] == "de-en,fr-en,ja-en,zh-en"
    assert pooled["adapters"]["in/fr"] == json.loads((work / "pool" / "pool.json").read_text())["adapters"]["in/fr"]
    lost = cells[7]
    lost.unlink()
    stages = json.loads((work / "stages.json").read_text())
    stages["quality"]["done"] = False
    (work / "stages.json").write_text(json.dumps(stages))
    before = {p: p.stat().st_mtime_ns for p in cells if p != lost}
    rp.reproduce(str(tiny_model_dir), corpus, "tiny", work, provider="cpu", ood=ood, evidence=evidence)
    assert lost.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())

    with pytest.raises(Exception, match="holds a run with other settings"):
        rp.reproduce(str(tiny_model_dir), corpus, "cpu", work, provider="cpu")

    # A new machine with only the committed evidence, two cells short of a finished quality stage: the
    # run resumes from it. No tuning trial is trained again except the chosen ones those two cells need
    # (the main pool shares the chosen adapters trial's; the full cell is the chosen full trial), which
    # retrain to the fingerprints the evidence recorded, and the two cells come back with their chrF++.
    committed = tmp_path / "committed"
    shutil.copytree(evidence, committed)
    lost = {p.relative_to(work): json.loads(p.read_text())["chrf"] for p in
            sorted((work / "quality" / "main").glob("devtest-*/fr-de/s1-1:9.json"))[:1]
            + sorted((work / "quality" / "main").glob("devtest-*/de-fr/full.json"))[:1]}
    assert len(lost) == 2
    for path in lost:
        (committed / path).unlink()
    stages = json.loads((committed / "stages.json").read_text())
    stages["quality"]["done"] = False
    (committed / "stages.json").write_text(json.dumps(stages))
    fresh = tmp_path / "fresh"
    rp.reproduce(str(tiny_model_dir), corpus, "tiny", fresh, provider="cpu", ood=ood, evidence=committed)
    trained = sorted(p.name for p in (fresh / "tune").iterdir() if p.name.startswith(("full-lr", "adapters-lr")))
    assert trained == sorted([f"adapters-lr{tune['chosen']['adapters']:g}", f"full-lr{tune['chosen']['full']:g}"])
    for path, chrf in lost.items():
        assert json.loads((committed / path).read_text())["chrf"] == pytest.approx(chrf, abs=1e-9)
    table = text[text.index("## Table 1"):text.index("## ", text.index("## Table 1") + 3)]
    assert table in (committed / "report.md").read_text()
    assert len(sorted(committed.rglob("*.json"))) == len(sorted(evidence.rglob("*.json")))
    # A retrained model that is not the one the evidence scored is an error, never a mixed table.
    cell_path = next((committed / "quality" / "main").glob("devtest-*/fr-de/out.json"))
    cell = json.loads(cell_path.read_text())
    cell["fingerprints"]["adapters"]["out/de"] = "0" * 16
    cell_path.write_text(json.dumps(cell))
    for folder in (fresh, committed):  # a cell to decode again, which needs the main pool's adapters
        (folder / next(iter(lost))).unlink()
    stages = json.loads((fresh / "stages.json").read_text())
    stages["quality"]["done"] = False
    (fresh / "stages.json").write_text(json.dumps(stages))
    with pytest.raises(Exception, match="out/de .0000000000000000 in the evidence"):
        rp.reproduce(str(tiny_model_dir), corpus, "tiny", fresh, provider="cpu", ood=ood, evidence=committed)

    # Except for a tuning trial the search did not choose, retrained only for its out-of-domain row: it
    # may not be bit-identical to the model its dev cells recorded (full fine-tuning on another CPU
    # does). No Table-1 cell reads it and its dev cells are never decoded again, so the run goes on,
    # the new cells record the new model, and the report marks the row.
    cell_path.write_text(json.dumps({**cell, "fingerprints": json.loads((evidence / cell_path.relative_to(
        committed)).read_text())["fingerprints"]}))
    unchosen = next(t for t in tune["trials"] if t["side"] == "full" and t["lr"] != tune["chosen"]["full"])
    trial = f"full-lr{unchosen['lr']:g}"
    for dev_cell in [*(committed / "tune" / "quality" / trial).glob("*/*/full.json"),
                     *(fresh / "tune" / "quality" / trial).glob("*/*/full.json")]:
        recorded = json.loads(dev_cell.read_text())
        recorded["fingerprints"]["full_model"] = "1" * 16  # as if trained on another machine
        dev_cell.write_text(json.dumps(recorded))
    ood_cell = next((committed / "quality-ood-trials" / f"tune-{trial}").glob("*/*/full.json"))
    for folder in (fresh, committed):
        (folder / ood_cell.relative_to(committed)).unlink()
    stages = json.loads((fresh / "stages.json").read_text())
    stages["ood-trials"]["done"] = False
    (fresh / "stages.json").write_text(json.dumps(stages))
    rp.reproduce(str(tiny_model_dir), corpus, "tiny", fresh, provider="cpu", ood=ood, evidence=committed)
    assert json.loads(ood_cell.read_text())["fingerprints"]["full_model"] not in (None, "1" * 16)
    learning_rates = (committed / "report.md").read_text().split("## Learning rate and general ability")[1]
    assert f"| full | {unchosen['lr']:g} ‡ |" in learning_rates and f"‡ (full {unchosen['lr']:g})" in learning_rates
    assert learning_rates.count(" ‡ |") == 1


def test_pooled_english_data_is_balanced(tmp_path):
    from modmt.train.data import adapter_data
    from modmt.train.tiny import write_tiny_corpus

    corpus = open_corpus(write_tiny_corpus(tmp_path / "c"), load_registry())
    groups = adapter_data(corpus, "out", "en", "pooled", max_pairs=10, pooled_langs=["fr", "de", "ja", "zh"])
    assert [str(d) for d, _ in groups] == ["fr-en", "de-en", "ja-en", "zh-en"]
    assert [len(p) for _, p in groups] == [3, 3, 2, 2]          # 10 pairs, an equal share each
    fr_en = groups[0][1][0]
    assert fr_en[1] in [e for e, _ in corpus.pairs("fr")]       # target side is English
    into = adapter_data(corpus, "in", "en", "pooled", pooled_langs=["fr", "ja"])
    assert [str(d) for d, _ in into] == ["en-fr", "en-ja"]
    copies = adapter_data(corpus, "out", "en", "copy", max_pairs=5)
    assert len(copies) == 1 and all(s == t for s, t in copies[0][1])


def test_paired_bootstrap_intervals():
    from modmt.benchmarks.quality import chrf_scorer
    from modmt.benchmarks.significance import SegmentStats

    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
    refs = [" ".join(rng.choice(words, 8)) for _ in range(40)]
    stats = SegmentStats(chrf_scorer(), resamples=300)
    stats.add("good", "x-y", refs, refs)                           # perfect
    stats.add("same", "x-y", refs, refs)
    stats.add("bad", "x-y", [" ".join(rng.choice(words, 8)) for _ in refs], refs)
    stats.add("half", "x-y", [r if i % 2 else " ".join(rng.choice(words, 8)) for i, r in enumerate(refs)], refs)
    tie = stats.difference("good", "same", ["x-y"])
    assert tie.value == 0 and not tie.excludes_zero()
    win = stats.difference("good", "bad", ["x-y"])
    assert win.value > 20 and win.low > 0
    ratio = stats.gain_ratio("half", "bad", "good", ["x-y"])
    assert 0.2 < ratio.value < 0.8 and ratio.low < ratio.value < ratio.high
    assert stats.gain_ratio("good", "bad", "good", ["x-y"]).value == pytest.approx(1.0)
    assert stats.score("good", "x-y") == pytest.approx(100.0)
    # a share of full fine-tuning's gain needs a gain: none where it loses to the base or ties with it
    assert stats.gain_ratio("half", "good", "same", ["x-y"]) is None
    assert stats.gain_ratio("half", "good", "bad", ["x-y"]).value > 0  # a share of a loss: defined, unstable
    assert stats.gain_ratio("half", "good", "bad", ["x-y"], require_gain=True) is None
    assert stats.gain_ratio("half", "bad", "good", ["x-y"], require_gain=True) == ratio


def test_a_pooled_row_borrows_only_the_directions_without_english():
    from modmt.benchmarks.quality import chrf_scorer
    from modmt.benchmarks.report_cells import collect

    langs = ["en", "fr", "de"]
    def cell(pool, src, tgt):
        return {"pool": pool, "method": "s1-1:9", "label": "Setting 1 (1:9)", "src": src, "tgt": tgt, "n": 2,
                "chrf": 50.0, "hypotheses": ["a cat", "a dog"], "references": ["a cat", "the dog"]}
    main = [cell("main", s, t) for s in langs for t in langs if s != t]
    # a run cut short: the pooled recipe has scored one of its four directions with English
    rows, _, _ = collect(main + [cell("pooled", "en", "fr")], chrf_scorer())
    assert sorted(rows["s1-1:9+pooled-en"]) == ["de-fr", "en-fr", "fr-de"]
    assert rows["s1-1:9+pooled-en"]["en-fr"]["pool"] == "pooled" and rows["s1-1:9+pooled-en"]["de-fr"]["pool"] == "main"


def test_a_remedy_row_is_compared_with_the_row_it_changes_on_the_same_segments():
    from modmt.benchmarks.quality import chrf_scorer
    from modmt.benchmarks.report_ability import ability_table

    rng = np.random.default_rng(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
    refs = [" ".join(rng.choice(words, 8)) for _ in range(30)]
    noise = [" ".join(rng.choice(words, 8)) for _ in refs]

    def cells(pool, method, right_every):  # a hypothesis is the reference on every `right_every`-th segment
        hyps = [r if i % right_every == 0 else x for i, (r, x) in enumerate(zip(refs, noise))]
        return [{"pool": pool, "method": method, "src": s, "tgt": t, "n": len(refs), "hypotheses": hyps,
                 "references": refs} for s, t in (("en", "fr"), ("fr", "en"))]

    domain_cells = {folder: cells("main", "base", 5) for folder in ("quality", "quality-ood")}
    rows = {"1": {"in domain": cells("pooled", "s1-1:9", 2), "out of domain": cells("pooled", "s1-1:9", 3)},
            "0.5": {"in domain": cells("pooled", "s1-1:9@0.5", 3), "out of domain": cells("pooled", "s1-1:9@0.5", 2)}}
    lines = ability_table("S", "---:", "− S = 1", rows, chrf_scorer(), domain_cells)
    header = lines[0].strip(" |").split(" | ")
    assert header[3] == "in domain − S = 1" and header[6] == "out of domain − S = 1"
    table = {line.split(" | ")[0][2:]: line.strip(" |").split(" | ")[1:] for line in lines[2:] if line}
    assert table["1"][2] == "-" and table["1"][5] == "-"  # the row the others change, against itself
    for domain, (score, gain, change) in (("in", table["0.5"][:3]), ("out", table["0.5"][3:])):
        first_score, first_gain = float(table["1"][0 if domain == "in" else 3]), table["1"][1 if domain == "in" else 4]
        # the paired difference to the first row is the difference of the two gains over the base
        assert float(change.split()[0]) == pytest.approx(float(gain.split()[0]) - float(first_gain.split()[0]), abs=0.02)
        assert float(change.split()[0]) == pytest.approx(float(score) - first_score, abs=0.02)
        assert (float(change.split()[0]) < 0) == (domain == "in")  # right on 1/3 against 1/2 of segments in domain


def test_out_of_domain_trials_run_cheapest_first(tmp_path):
    from modmt.benchmarks.reproduce import ood_trial_order

    trials = [{"side": side, "lr": lr} for side, lr in
              (("full", 2e-5), ("full", 5e-5), ("adapters", 3e-4), ("adapters", 1e-3), ("full", 8e-6))]
    for kept in ("adapters-lr0.001", "full-lr8e-06"):  # models the tune stage kept
        (tmp_path / "tune" / kept).mkdir(parents=True)
    order = [(t["side"], t["lr"]) for t in ood_trial_order(trials, tmp_path)]
    assert order == [("full", 8e-6), ("adapters", 1e-3), ("full", 2e-5), ("full", 5e-5), ("adapters", 3e-4)]


def test_two_trainings_of_a_model_are_told_apart_by_the_cells_fingerprints():
    from modmt.benchmarks.report_ability import models_disagree

    def cell(**prints):
        return {"fingerprints": prints}
    dev = [cell(full_model="aa"), cell(adapters={"in/fr": "b1", "out/en": "c1"})]
    assert not models_disagree(dev, [cell(full_model="aa")])
    assert models_disagree(dev, [cell(full_model="ab")])
    assert models_disagree(dev, [cell(adapters={"in/fr": "b1", "out/en": "c2"})])
    assert not models_disagree(dev, [cell(adapters={"in/de": "d1"})])  # no adapter in common
    assert not models_disagree(dev, [{"pool": "x"}])  # a work folder's own cells carry no fingerprints


def test_the_aim_verdict_reads_the_interval_of_the_gain_ratio():
    from modmt.benchmarks.report import aim_verdict
    from modmt.benchmarks.significance import Interval

    assert aim_verdict(Interval(0.9, 0.75, 1.1)) == "holds"
    assert aim_verdict(Interval(0.9, 0.70, 1.1)) == "holds"  # at the aim counts
    assert aim_verdict(Interval(0.5, 0.3, 0.69)) == "does not hold"
    assert aim_verdict(Interval(0.8, 0.6, 1.0)).startswith("holds on the point estimate")
    assert aim_verdict(Interval(0.6, 0.4, 0.8)).startswith("does not hold on the point estimate")
    # out of domain full fine-tuning may not gain over the base: then there is no ratio, and no verdict
    assert aim_verdict(None).startswith("no verdict")


def test_gap_trend_is_read_only_where_the_training_data_differed():
    from modmt.benchmarks.report_limits import _rank_note
    from modmt.benchmarks.significance import Interval

    gaps = [(415, Interval(-3.0, -4.0, -2.0)), (5116, Interval(-1.0, -2.0, 0.0)), (18624, Interval(0.5, -0.5, 1.5))]
    assert "ρ between pairs used and the gap = +1.00 over 3 directions" in _rank_note(gaps, None)
    # capped at 96 pairs each (the cpu profile): every direction trained on the same data, no trend to read
    assert "same 96 pairs" in _rank_note(gaps, 96)
    assert "too few" in _rank_note(gaps[:2], None)
