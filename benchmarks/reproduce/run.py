"""`modmt-bench reproduce`: the paper's Table 1 as one resumable experiment, from corpus to report.

Stages, each cached in --workdir and skipped once finished (a killed run continues with the same
command and recomputes nothing it finished):

  tune         equal-budget learning-rate search on the dev split: the same grid size for full
               fine-tuning and for the adapters, each trial scored on a fixed dev sample, one more trial
               beyond a grid's edge where a side's best lies on it; the choices train the stages below
               (full FT reuses its chosen trial's model)
  adapters     LoRA_in/LoRA_out for every language (the paper's recipe: English's pair on en->en)
  tune-base    (after tune) the untrained base on the search's dev sample: the trials' reference
  pooled-en    English's two adapters again with the pooled recipe (x->en / en->x), in a second pool
               that shares the other languages' adapters
  full         the full fine-tuning baseline on every l->en and en->l pair
  weights      per-layer weight learning for every direction (section 3.4)
  pooled-weights  weight learning for the pooled pool's directions with English (the others share
               the main pool's adapters), so both recipes have the same rows
  quality      chrF++ of every (direction, method), headline rows on more segments than the others
  ood-quality  (with --ood) the headline rows again on a corpus from another domain
  scale        (with --ood) the pooled recipe's best Setting-1 row with merge weights summing to 0.75 and
               0.5 (--w IN:OUT@S), in domain and out of it: a weaker merge's cost and what it keeps
  mix          (with --ood that has a train split) the pooled recipe trained again with a quarter of every
               adapter's pairs from that split, scored like `scale`: what mixing general-domain text keeps
  ood-trials   (with --ood) every tuning trial's row out of domain: the learning rate's cost to general
               ability, beside its in-domain dev score (last of the three remedies: it may retrain
               models the tune stage deleted, the costliest)
  evidence     the run's small files and every cell, enriched with provenance, into --evidence
  report       Table 1, gain ratios and paired-bootstrap intervals, findings, plots -> report.md,
               written from the evidence folder alone

With --evidence pointing at the committed evidence of the same run, a new machine resumes from it:
recorded trials and cells are kept, learned weights restored, and a model is retrained only when a cell
still to decode needs it, and must then match the fingerprints the evidence recorded.
A profile fixes the budget: `paper` (the paper's settings as far as the data allows; for a GPU),
`cpu` (what a 2-core machine finishes in one working session) and `tiny` (the test kit).
"""
import json
import logging

from dataclasses import asdict, replace

from pathlib import Path

from modmt.benchmarks.reproduce.profiles import LANGS, MIX_SHARE, PROFILES
from modmt.benchmarks.reproduce.scoring import (QualityRun, has_train_split, run_mix_stage, run_ood_stage,
                                                run_ood_trials_stage, run_quality_stage, run_scale_stage,
                                                score_trial_out_of_domain)
from modmt.benchmarks.reproduce.stages import Stages
from modmt.benchmarks.reproduce.training import learn_all_weights, pooled_english_pool, train_adapters, train_full_model
from modmt.benchmarks.reproduce.tuning import score_base_on_dev, train_trial, tune_learning_rates
from modmt.benchmarks.run_layout import RunLayout
from modmt.benchmarks.table1 import Method
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError


log = logging.getLogger(__name__)

def reproduce(model: str | None, data: Path | None, profile_name: str, work: Path, provider: str = "auto",
              langs: list[str] | None = None, stop_after: str | None = None, ood: Path | None = None,
              evidence: Path | None = None) -> Path:
    from modmt.runtime.languages import load_registry
    from modmt.train.corpus import open_corpus
    from modmt.train.models import DEFAULT_MODEL, fetch_model, resolve_model

    if profile_name not in PROFILES:
        raise ModmtError(f"--profile is one of {', '.join(PROFILES)}, got {profile_name!r}")
    profile = PROFILES[profile_name]
    work.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(work)
    settings_file = layout.settings
    settings = json.loads(json.dumps({"model": model, "data": str(data) if data else None,
                                      "profile": asdict(profile), "langs": langs or LANGS}))
    if evidence is not None and RunLayout(evidence).settings.exists():
        # The committed evidence of this run outlives the machine that ran it: resume from it.
        from modmt.benchmarks.evidence import restore_evidence

        if json.loads(RunLayout(evidence).settings.read_text()) != settings:
            raise ModmtError(f"{evidence} holds the evidence of a run with other settings; use a new --evidence "
                             "or the same --model, --data and --profile")
        restored = restore_evidence(evidence, work)
        if restored:
            log.info(f"restored {restored} files of the run from {evidence}")
    if settings_file.exists():
        recorded = json.loads(settings_file.read_text())
        if recorded != settings:
            raise ModmtError(f"{work} holds a run with other settings ({settings_file}); use a new --workdir "
                             "or the same --model, --data and --profile")
    else:
        write_json_atomic(settings_file, settings)
    # Evaluation-only inputs are recorded beside the settings, not compared: adding a test set to a
    # finished run scores it without retraining anything.
    write_json_atomic(layout.evaluation, {"ood": str(ood) if ood else None})
    stages = Stages(work)
    registry = load_registry()
    langs = langs or LANGS

    def corpus_stage():
        if data is not None:
            return str(data)
        from modmt.train.ddtp import build_corpus, fetch_translation_lists
        from modmt.train.models import modmt_home

        languages = registry.parse_list(",".join(langs))
        build_corpus(fetch_translation_lists(modmt_home() / "ddtp", languages), languages, layout.corpus, force=True)
        return str(layout.corpus)

    corpus_dir = Path(stages.run("corpus", corpus_stage))
    corpus = open_corpus(corpus_dir, registry)
    model_dir = resolve_model(model) if model else fetch_model(DEFAULT_MODEL)
    ood_corpus = open_corpus(ood, registry) if ood is not None else None
    pools = {"main": layout.pool("main"), "pooled": layout.pool("pooled"), "pool-mixed": layout.pool("mixed")}
    full_dir = layout.full

    if profile.full_lr_trials and len(profile.full_lr_trials) != len(profile.adapter_lr_trials):
        raise ModmtError("a profile's tuning search gives both sides the same number of trials")

    def check_against_evidence():
        """A model just trained (or found) must be the one the evidence scored, where it scored it."""
        if evidence is not None and RunLayout(evidence).settings.exists():
            from modmt.benchmarks.evidence import models_differing_from_evidence

            differing, retrained = models_differing_from_evidence(work, evidence)
            if retrained:  # an unchosen trial, retrained for its out-of-domain row (see the function)
                log.info(f"retrained, not bit-identical to the model its dev cells were scored with: "
                           f"{'; '.join(retrained)}; the report marks its row")
            if differing:
                raise ModmtError(f"a retrained model is not the one {evidence} scored ({'; '.join(differing)}): "
                                 "training did not reproduce on this machine; resume where the run started, "
                                 "or start a new --workdir and --evidence")

    tuned = bool(profile.full_lr_trials)
    if tuned:
        # The search's choices train everything below; full FT and the pooled pool are their trials.
        def tune_stage():
            out_of_domain = (QualityRun(work, ood_corpus, profile, provider, folder="quality-ood-trials")
                             if ood_corpus is not None else None)

            def score_elsewhere(trained: Path, side: str):  # each trial out of domain, while its model is here
                if out_of_domain is not None:
                    score_trial_out_of_domain(out_of_domain, trained, side, langs)
            return tune_learning_rates(model_dir, corpus, registry, langs, work, profile, provider,
                                       after_training=check_against_evidence, after_scoring=score_elsewhere)

        search = stages.run("tune", tune_stage)
        profile = replace(profile, full_lr=search["chosen"]["full"], adapter_lr=search["chosen"]["adapters"])
        full_dir = layout.trial("full", profile.full_lr)
        pools["pooled"] = layout.trial("adapters", profile.adapter_lr)

    # The models the stages read, each built (or found: training resumes and skips what exists) when
    # first needed, then checked against the fingerprints the evidence recorded for the cells it
    # decoded: on a new machine a model is retrained, and a retrained model that differs is an error,
    # never a table that mixes two trainings.
    def build_main():
        if tuned:  # the non-English adapters are the chosen trial's; English's copy pair is new
            need("pooled")
            pooled_english_pool(pools["pooled"], pools["main"], recipe="copy")
        return train_adapters(model_dir, corpus, registry, langs, pools["main"], profile)

    def build_pooled():
        if tuned:
            return train_trial(model_dir, corpus, registry, langs, work, profile, "adapters", profile.adapter_lr)
        need("main")
        pooled_english_pool(pools["main"], pools["pooled"])
        return train_adapters(model_dir, corpus, registry, langs, pools["pooled"], profile, english="pooled")

    def build_full():
        if tuned:
            return train_trial(model_dir, corpus, registry, langs, work, profile, "full", profile.full_lr)
        return train_full_model(model_dir, corpus, registry, langs, full_dir, profile)

    def build_mixed():  # the pooled recipe, a share of every adapter's pairs from the general-domain corpus
        return train_adapters(model_dir, corpus, registry, langs, pools["pool-mixed"], profile, english="pooled",
                              mix=(ood_corpus, MIX_SHARE))

    builders = {"main": build_main, "pooled": build_pooled, "full": build_full, "pool-mixed": build_mixed}
    built = {}

    def need(product: str):
        """product: "main", "pooled", "full" or a tuning trial's folder name ("full-lr2e-05")."""
        if product not in built:
            if product in builders:
                built[product] = builders[product]()
            else:
                side, lr = product.rsplit("-lr", 1)
                built[product] = train_trial(model_dir, corpus, registry, langs, work, profile, side, float(lr))
            check_against_evidence()
        return built[product]

    def prepare(pool_key: str, method: Method) -> None:  # a cell is about to be decoded
        if method.key == "full":
            need(pool_key.removeprefix("tune-") if pool_key.startswith("tune-") else "full")
        elif method.key != "base":
            need(pool_key.removeprefix("tune-") if pool_key.startswith("tune-") else pool_key)

    def quality_run(corpus_, folder="quality"):
        return QualityRun(work, corpus_, profile, provider, folder=folder, prepare=prepare)

    def pooled_stage():
        info = need("pooled")
        return "the chosen tuning trial's pool" if tuned else info

    def weights_stage(pool: str):
        need(pool)  # the adapters whose weights are learned (restored weights skip the learning)
        return learn_all_weights(model_dir, pools[pool], corpus, registry, langs, profile,
                                 only_english=pool == "pooled")

    plan = [
        ("adapters", lambda: need("main")),
        # only the base model is read; the main pool names it
        *([("tune-base", lambda: score_base_on_dev(work, corpus, profile, provider, langs, pools["main"], prepare))]
          if tuned else []),
        ("pooled-en", pooled_stage),
        ("full", lambda: need("full")),
        ("weights", lambda: weights_stage("main")),
        ("pooled-weights", lambda: weights_stage("pooled")),
        ("quality", lambda: run_quality_stage(quality_run(corpus), langs, pools, full_dir, learned=True)),
    ]
    if ood_corpus is not None:
        plan.append(("ood-quality", lambda: run_ood_stage(quality_run(corpus), quality_run(ood_corpus, "quality-ood"),
                                                          langs, pools, full_dir)))
        plan.append(("scale", lambda: run_scale_stage(quality_run(corpus), quality_run(corpus, "quality-scale"),
                                                      quality_run(ood_corpus, "quality-ood-scale"), langs, pools)))
        if has_train_split(ood_corpus, langs):
            plan.append(("mix", lambda: run_mix_stage(quality_run(corpus), quality_run(corpus, "quality-mix"),
                                                      quality_run(ood_corpus, "quality-ood-mix"), langs, pools)))
        else:
            log.info(f"{ood}: no train split for every language, so no `mix` stage (rebuild it with "
                       "`modmt data gettext` to get one)")
        if tuned:  # last: where the tune stage deleted a trial's model, this retrains it
            plan.append(("ood-trials", lambda: run_ood_trials_stage(quality_run(ood_corpus, "quality-ood-trials"),
                                                                    work, langs)))
    for name, fn in plan:
        if stop_after in ("corpus", "tune"):
            break
        stages.run(name, fn)
        if name == stop_after:
            break
    from modmt.benchmarks.evidence import write_run_evidence
    from modmt.benchmarks.report import write_report

    evidence = evidence or layout.evidence
    stages.run("evidence", lambda: str(write_run_evidence(work, evidence)), always=True)
    return write_report(evidence)
