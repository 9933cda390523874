"""Peak resident memory and wall time of a command, as /usr/bin/time -v reports them, for one child process.

`os.wait4` returns the rusage of exactly that child, so a small run measured after a large one is
not masked by it (RUSAGE_CHILDREN keeps the largest child so far). ru_maxrss is the peak RSS of
the process itself: the number a machine's memory must hold, page cache not included.
"""
import os
import subprocess
import sys
import time


def run_measured(command: list[str], log=None) -> dict:
    """Run `command` to completion; {"seconds", "peak_rss_bytes", "returncode"}. log: a file for its output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else None)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_bytes": usage.ru_maxrss * scale,
            "returncode": process.returncode}


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (for stages timed in-process)."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
