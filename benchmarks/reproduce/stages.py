"""Stages: stages.json in the work folder, so a killed run skips every stage it finished."""
import json
import logging

import time

from pathlib import Path

from modmt.benchmarks.run_layout import RunLayout

from modmt.runtime.atomic import write_json_atomic


log = logging.getLogger(__name__)

class Stages:
    """stages.json in the work folder: which stage finished, and its wall time."""

    def __init__(self, work: Path):
        self.path = RunLayout(work).stages
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, name: str, fn, *args, always: bool = False):
        entry = self.data.get(name, {})
        if entry.get("done") and not always:
            log.info(f"==> {name}: done ({entry['seconds'] / 60:.1f} min), skipped")
            return entry.get("result")
        log.info(f"==> {name}")
        attempts = entry.get("attempts", 0) + 1  # more than 1: the stage was resumed after a kill
        self.data[name] = {"done": False, "attempts": attempts, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json_atomic(self.path, self.data)
        started = time.perf_counter()
        result = fn(*args)
        self.data[name] = {"done": True, "attempts": attempts, "seconds": round(time.perf_counter() - started, 1),
                           "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "result": result}
        write_json_atomic(self.path, self.data)
        return result
