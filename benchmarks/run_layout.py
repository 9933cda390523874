"""RunLayout: where every file and folder of a `modmt-bench reproduce` run lives, named once.

The same layout holds a run's work folder and its committed evidence (the evidence keeps the JSON
records only). reproduce writes it, evidence restores and checks it, the report reads it.
"""
import json
from dataclasses import dataclass
from pathlib import Path

POOL_FOLDERS = {"main": "pool", "pooled": "pool-pooled-en", "mixed": "pool-mixed"}  # adapters per recipe
# What the run records about itself, relative to its root: what evidence keeps and restores first.
RECORDS = {"settings": "settings.json", "stages": "stages.json", "trials": "tune/trials.json"}


@dataclass(frozen=True)
class RunLayout:
    root: Path

    # What the run records about itself.
    @property
    def settings(self) -> Path:        # the model, data, languages and profile the run was started with
        return self.root / RECORDS["settings"]

    @property
    def stages(self) -> Path:          # each finished stage and what it returned
        return self.root / RECORDS["stages"]

    @property
    def evaluation(self) -> Path:      # which corpus split each quality folder scored
        return self.root / "evaluation.json"

    # What it trains.
    def pool(self, recipe: str = "main") -> Path:
        return self.root / POOL_FOLDERS.get(recipe, recipe)

    @property
    def full(self) -> Path:            # the full fine-tuning baseline
        return self.root / "full"

    @property
    def tune(self) -> Path:            # the learning-rate search: one folder per trial, and trials.json
        return self.root / "tune"

    @property
    def trials(self) -> Path:
        return self.root / RECORDS["trials"]

    def trial(self, side: str, lr: float) -> Path:
        return self.tune / f"{side}-lr{lr:g}"

    # What it decodes and reports.
    @property
    def corpus(self) -> Path:          # the DDTP corpus the run builds when no --data is given
        return self.root / "ddtp"

    @property
    def corpora(self) -> Path:         # what each scored corpus holds (quality.json, quality-ood.json)
        return self.root / "corpora"

    def exports(self, cell_folder: str = "quality") -> Path:
        return self.root / ("tune/onnx" if cell_folder == "tune/quality" else "onnx")

    @property
    def evidence(self) -> Path:        # the run's evidence when no --evidence folder is given
        return self.root / "evidence"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def results(self) -> Path:         # every cell's chrF++, for the plots
        return self.root / "results.json"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    # Readers: a record the run has not written yet reads as empty.
    def read(self, path: Path, default=None):
        return json.loads(path.read_text()) if path.exists() else default
