"""Peak resident memory and wall time of a command, as /usr/bin/time -v reports them, for one child process.

A child's ru_maxrss starts from the RSS of the process that forked it (the kernel carries the
parent's high-water mark across fork and exec), so a command started from a large process (a test
run, a benchmark holding a model) would report at least that process's size. The command is
therefore started by a small Python process, which forks it, waits with `os.wait4` (that child's
own rusage) and reports: a ~10 MB floor, like /usr/bin/time's own.
"""
import json
import subprocess
import sys
import tempfile
import time

MEASURE = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
json.dump({"returncode": os.waitstatus_to_exitcode(status), "ru_maxrss": usage.ru_maxrss}, open(sys.argv[1], "w"))
"""


def run_measured(command: list[str], log=None) -> dict:
    """Run `command` to completion; {"seconds", "peak_rss_bytes", "returncode"}. log: a file for its output."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", MEASURE, report.name, *command], stdout=log or subprocess.DEVNULL,
                       stderr=subprocess.STDOUT if log else None, check=False)
        seconds = time.perf_counter() - started
        measured = json.load(open(report.name))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"seconds": round(seconds, 1), "peak_rss_bytes": measured["ru_maxrss"] * scale,
            "returncode": measured["returncode"]}


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (for stages timed in-process)."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
