"""modmt-bench's peak-memory measurement: each child's own peak, not the largest so far."""
import sys

import pytest
from click.testing import CliRunner

from modmt.benchmarks.peak_memory import run_measured


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units are Linux's here")
def test_each_command_gets_its_own_peak():
    big = run_measured([sys.executable, "-c", "x = bytearray(300_000_000); x[::4096] = b'1' * len(x[::4096])"])
    ballast = bytearray(300_000_000)  # this process large: a forked child would start from its high-water mark
    ballast[::4096] = b"1" * len(ballast[::4096])
    small = run_measured([sys.executable, "-c", "pass"])
    del ballast
    assert big["returncode"] == 0 and big["peak_rss_bytes"] > 300e6
    assert small["peak_rss_bytes"] < 100e6, "neither the large run before it nor this large process counts"
    assert run_measured([sys.executable, "-c", "raise SystemExit(3)"])["returncode"] == 3


def test_export_memory_refuses_unknown_precisions_and_layouts(tmp_path):
    from modmt.benchmarks.cli import bench_group

    for option, value in (("--precisions", "fp8"), ("--layouts", "sideways")):
        result = CliRunner().invoke(bench_group, ["export-memory", "--pool", str(tmp_path), option, value])
        assert result.exit_code != 0 and f"{option} takes" in str(result.exception)
