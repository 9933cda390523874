"""The evidence of a `modmt-bench reproduce` run: the small files a fresh clone rebuilds its report from.

A run's work folder holds gigabytes (models, adapters, exports) and stays on its machine. Its
evidence folder holds only JSON: the run's settings, stage times, tuning trials, the pool's
parameter counts and learned weights, the corpus' sizes, and one self-contained file per evaluated
cell (method, direction, which segments of which split, hypotheses and the references they were
scored against, chrF++ with its sacrebleu signature and summed statistics, fingerprints of the base
model, the adapters or fine-tuned model and the export, and the command). `modmt-bench report`
reads nothing else, so the folder can be committed and the report regenerated, and any cell
re-scored with sacrebleu, without the machine that ran it. And the run itself can resume from it on
another machine (`restore_evidence`), retraining a model only where a cell still needs it and only
if it comes out with the fingerprints the evidence recorded (`models_differing_from_evidence`).
"""
import json
import shutil
from pathlib import Path

from modmt.benchmarks.run_layout import POOL_FOLDERS, RECORDS, RunLayout
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import sha256_file

# What the report reads besides the cells, relative to the work folder: the run's records and the pool's.
RUN_FILES = [*RECORDS.values(), f"{POOL_FOLDERS['main']}/pool.json"]
CELL_FOLDERS = ["quality", "quality-ood", "quality-ood-trials", "quality-scale", "quality-ood-scale", "quality-mix",
                "quality-ood-mix", "tune/quality"]


def _short_hash(path: Path) -> str | None:
    return sha256_file(path)[:16] if path.exists() else None


class Fingerprints:
    """sha256 prefixes of what produced a cell, computed once per file."""

    def __init__(self, work: Path, base_fingerprint: str | None):
        self.work, self.base, self.cache = work, base_fingerprint, {}

    def file(self, path: Path) -> str | None:
        if path not in self.cache:
            self.cache[path] = _short_hash(path)
        return self.cache[path]

    def trial_dir(self, cell_folder: str, pool_key: str) -> Path | None:
        """A tuning trial's folder (its pool or fine-tuned model) for its dev and out-of-domain cells, else None."""
        if cell_folder == "tune/quality":
            return RunLayout(self.work).tune / pool_key
        if pool_key.startswith("tune-"):  # a tuning trial scored out of domain
            return RunLayout(self.work).tune / pool_key.removeprefix("tune-")
        return None

    def pool_dir(self, cell_folder: str, pool_key: str) -> Path:
        return (self.trial_dir(cell_folder, pool_key)
                or RunLayout(self.work).pool(pool_key))

    def of_cell(self, cell_folder: str, cell: dict, chosen_pooled: Path | None, full_dir: Path | None) -> dict:
        onnx = RunLayout(self.work).exports(cell_folder) / cell["pool"]
        export = onnx / "exports" / f"{cell['src']}-{cell['tgt']}" / cell["method"] / "modmt.json"
        found = {"base_model": self.base, "export_manifest": self.file(export)}
        if cell["method"] == "full":
            model = self.trial_dir(cell_folder, cell["pool"]) or full_dir
            found["full_model"] = self.file(model / "model.safetensors") if model else None
        elif cell["method"] != "base":
            pool = chosen_pooled if cell["pool"] == "pooled" and chosen_pooled else self.pool_dir(cell_folder, cell["pool"])
            roles = {"in": [("in", cell["src"])], "out": [("out", cell["tgt"])]}.get(
                cell["method"], [("in", cell["src"]), ("out", cell["tgt"])])
            found["adapters"] = {f"{role}/{lang}": self.file(pool / role / lang / "adapter_model.safetensors")
                                 for role, lang in roles}
            if cell["method"] == "learned":
                found["learned_weights"] = self.file(pool / "weights" / f"{cell['src']}-{cell['tgt']}.json")
        return found


def write_evidence(work: Path, out: Path, corpora: dict[str, Path], command: str,
                   base_fingerprint: str | None = None, chosen_pooled: Path | None = None,
                   full_dir: Path | None = None) -> Path:
    """Copy a run's small files and every cell (enriched) from `work` into `out`; idempotent.
    corpora: cell folder -> the corpus its cells were scored on (for the segments' provenance)."""
    from modmt.benchmarks.quality import chrf_scorer

    chrf = chrf_scorer()
    signature = str(chrf.get_signature())
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (work / name).exists():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / name, target)
    pool_dirs = [(POOL_FOLDERS["main"], RunLayout(work).pool())] + (
        [(POOL_FOLDERS["pooled"], chosen_pooled)] if chosen_pooled else [])
    for name, pool in pool_dirs:
        for path in sorted((pool / "weights").glob("*.json")) if pool.exists() else []:
            (out / name / "weights").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / name / "weights" / path.name)
        if name != "pool" and (pool / "pool.json").exists():
            (out / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pool / "pool.json", out / name / "pool.json")
    for key, corpus in corpora.items():
        # What the corpus says of itself, and its training pairs per language (counted, for corpora
        # built by hand that carry no corpus.json).
        info = json.loads((corpus / "corpus.json").read_text()) if (corpus / "corpus.json").exists() else {}
        trains = sorted((corpus / "train").glob("en-*.tsv"))
        if trains and "train" not in info:
            info["train"] = {p.stem: sum(1 for line in p.open(encoding="utf-8") if line.strip()) for p in trains}
        write_json_atomic(out / "corpora" / f"{key.replace('/', '-')}.json", info)
    prints = Fingerprints(work, base_fingerprint)
    for folder in CELL_FOLDERS:
        corpus = corpora.get(folder)
        for path in sorted((work / folder).glob("*/*/*/*.json")):
            cell = json.loads(path.read_text())
            split = path.parent.parent.name.split("-n")[0]  # <split>-n<N>-beam<B>
            stats = chrf._extract_corpus_statistics(cell["hypotheses"], [cell["references"]])
            enriched = {
                **{k: v for k, v in cell.items() if k not in ("hypotheses", "references")},
                "direction": f"{cell['src']}-{cell['tgt']}",
                "segments": {"corpus": str(corpus) if corpus else None, "split": split,
                             "ids": list(range(cell["n"])),  # line numbers in <corpus>/<split>/<lang>.txt
                             "source_sha256": prints.file(corpus / split / f"{cell['src']}.txt") if corpus else None,
                             "reference_sha256": prints.file(corpus / split / f"{cell['tgt']}.txt") if corpus else None},
                "chrf_signature": signature,
                "chrf_statistics": [int(sum(col)) for col in zip(*stats)],
                # A cell restored from evidence keeps the fingerprints recorded when it was decoded: its
                # model may not be on this machine (a retrained one is checked equal before it is used).
                "fingerprints": cell.get("fingerprints") or prints.of_cell(folder, cell, chosen_pooled, full_dir),
                "command": command,
                "hypotheses": cell["hypotheses"], "references": cell["references"],
            }
            target = out / path.relative_to(work)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(target, enriched)
    return out


def rescore(cell: dict) -> float:
    """chrF++ of a committed cell, recomputed by sacrebleu from its hypotheses and references."""
    from modmt.benchmarks.quality import chrf_scorer

    return chrf_scorer().corpus_score(cell["hypotheses"], [cell["references"]]).score


def reproduce_command(work: Path, settings: dict, ood: str | None) -> str:
    """The `modmt-bench reproduce` command line that makes (or resumes) this run."""
    import shlex

    words = ["modmt-bench", "reproduce", "--profile", settings["profile"]["name"], "--workdir", str(work)]
    for flag, value in (("--model", settings["model"]), ("--data", settings["data"]), ("--ood", ood)):
        if value:
            words += [flag, str(value)]
    return shlex.join(words)


def run_layout(work: Path) -> tuple[Path | None, Path]:
    """Where a reproduce run keeps the chosen tuning trial's pool (None without tuning) and the full
    fine-tuning model, read from what the run recorded."""
    layout = RunLayout(work)
    chosen = layout.read(layout.trials, {}).get("chosen", {})
    pooled = layout.trial("adapters", chosen["adapters"]) if "adapters" in chosen else None
    full_dir = layout.trial("full", chosen["full"]) if "full" in chosen else layout.full
    return pooled, full_dir


def restore_evidence(evidence: Path, work: Path) -> int:
    """Fill a work folder from a committed evidence folder, file by file, never overwriting: the run's
    settings, stage records and tuning trials, every cell, and the learned weights. A run whose machine
    is gone then resumes where its evidence ends: a recorded trial is not retrained, a recorded cell is
    not decoded again, and a model is retrained only when a missing cell needs it. Returns the number
    of files restored."""
    restored = 0

    def restore(source: Path, target: Path) -> None:
        nonlocal restored
        if source.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            restored += 1

    for name in RECORDS.values():
        restore(evidence / name, work / name)
    for folder in CELL_FOLDERS:
        for path in sorted((evidence / folder).glob("*/*/*/*.json")):
            restore(path, work / path.relative_to(evidence))
    chosen_pooled, _ = run_layout(work)
    layout = RunLayout(work)
    for name, pool in ((POOL_FOLDERS["main"], layout.pool()), (POOL_FOLDERS["pooled"], chosen_pooled or layout.pool("pooled"))):
        for path in sorted((evidence / name / "weights").glob("*.json")):
            restore(path, pool / "weights" / path.name)
    return restored


def models_differing_from_evidence(work: Path, evidence: Path) -> tuple[list[str], list[str]]:
    """The models now in `work` (adapters, fine-tuned model, learned weights) whose fingerprints differ
    from those recorded in `evidence` for the cells they decoded: a retrained model that is not the one
    the evidence scored. Models absent from `work` are not compared. Returns (differing, retrained):
    `retrained` are the differences confined to the dev cells of a tuning trial that the evidence
    records as finished and not chosen. Those cells are never decoded again and no Table-1 cell reads
    that model, so it may be retrained (for its out-of-domain row) and not be bit-identical, as full
    fine-tuning was when retrained on another machine: the report marks its row. Everything else is an error."""
    settings = json.loads(RunLayout(work).settings.read_text())
    prints = Fingerprints(work, base_model_fingerprint(settings))
    chosen_pooled, full_dir = run_layout(work)
    trials = RunLayout(evidence).read(RunLayout(evidence).trials, {})
    chosen = {RunLayout(work).trial(side, lr).name for side, lr in trials.get("chosen", {}).items()}
    spared = {RunLayout(work).trial(t["side"], t["lr"]).name for t in trials.get("trials", [])} - chosen
    differing, retrained = set(), set()
    for folder in CELL_FOLDERS:
        for path in sorted((evidence / folder).glob("*/*/*/*.json")):
            cell = json.loads(path.read_text())
            recorded, now = cell.get("fingerprints") or {}, prints.of_cell(folder, cell, chosen_pooled, full_dir)
            pairs = [(key, recorded.get(key), now.get(key)) for key in ("base_model", "full_model", "learned_weights")]
            pairs += [(f"adapter {name}", recorded.get("adapters", {}).get(name), sha)
                      for name, sha in now.get("adapters", {}).items()]
            found = {f"{cell['pool']} {name} ({was} in the evidence, {sha} now)"
                     for name, was, sha in pairs if was and sha and was != sha}
            (retrained if folder == "tune/quality" and cell["pool"] in spared else differing).update(found)
    return sorted(differing), sorted(retrained)


def base_model_fingerprint(settings: dict) -> str:
    from modmt.runtime.fingerprint import model_fingerprint
    from modmt.train.models import DEFAULT_MODEL, fetch_model, resolve_model

    return model_fingerprint(resolve_model(settings["model"]) if settings["model"] else fetch_model(DEFAULT_MODEL))


def write_run_evidence(work: Path, out: Path) -> Path:
    """write_evidence for a reproduce work folder, finished or not: its corpora, base model, chosen
    tuning trials, full fine-tuning model and command read from what the run recorded."""
    layout = RunLayout(work)
    settings = json.loads(layout.settings.read_text())
    evaluation = layout.read(layout.evaluation, {})
    stages = layout.read(layout.stages, {})
    corpus = Path(stages.get("corpus", {}).get("result") or settings["data"] or layout.corpus)
    corpora = {"quality": corpus, "quality-scale": corpus, "quality-mix": corpus, "tune/quality": corpus}
    if evaluation.get("ood"):
        for folder in ("quality-ood", "quality-ood-trials", "quality-ood-scale", "quality-ood-mix"):
            corpora[folder] = Path(evaluation["ood"])
    for path in sorted(set(corpora.values())):
        if not path.is_dir():  # a relative path is the run's own, from the folder it was started in
            raise ModmtError(f"{work} was scored on the corpus {path}, not found from {Path.cwd()}: run this "
                             "command from the folder the run was started in (or where that corpus is)")
    pooled, full_dir = run_layout(work)
    command = reproduce_command(work, settings, evaluation.get("ood"))
    return write_evidence(work, out, corpora, command, base_model_fingerprint(settings), pooled, full_dir)
