"""The committed evidence of the Table-1 run (results/table1-cpu): a fresh clone rebuilds its report
and the block of docs/results.md byte for byte, and its cells re-score to their recorded chrF++."""
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = Path("results/table1-cpu")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    if not (ROOT / EVIDENCE / "settings.json").exists():
        pytest.skip("no committed evidence")
    from modmt.benchmarks.report import write_report

    clone = tmp_path_factory.mktemp("clone")
    # Only the JSON inputs travel: the report, its plots and summaries are rebuilt from them.
    shutil.copytree(ROOT / EVIDENCE, clone / EVIDENCE, ignore=shutil.ignore_patterns("report.*", "plots", "results.json"))
    shutil.copytree(ROOT / "docs", clone / "docs", ignore=shutil.ignore_patterns("img", "*.png"))
    write_report(clone / EVIDENCE)
    return clone


def test_report_rebuilds_byte_for_byte(rebuilt):
    assert (rebuilt / EVIDENCE / "report.md").read_bytes() == (ROOT / EVIDENCE / "report.md").read_bytes()


def test_docs_block_rebuilds_byte_for_byte(rebuilt, monkeypatch):
    from modmt.benchmarks.report import update_document

    monkeypatch.chdir(rebuilt)  # the marker names the evidence folder as the command line does
    update_document(Path("docs/results.md"), EVIDENCE)
    assert (rebuilt / "docs" / "results.md").read_text() == (ROOT / "docs" / "results.md").read_text()


def test_cells_rescore_to_their_recorded_chrf(rebuilt):
    from modmt.benchmarks.evidence import rescore

    cells = sorted((ROOT / EVIDENCE).rglob("*-n*-beam*/*/*.json"))
    assert cells
    for path in cells[::7]:
        cell = json.loads(path.read_text())
        assert abs(rescore(cell) - cell["chrf"]) < 1e-9, path
        assert len(cell["hypotheses"]) == len(cell["references"]) == cell["n"] == len(cell["segments"]["ids"])
        assert cell["fingerprints"]["base_model"]
