"""Merge weights tuned per direction (`modmt-tune`), kept beside a shared base in tuned_weights.json.

A direction's tuned weights replace its exported weights as the default of a request that names
none; an explicit w still wins. A file that cannot be read is one warning line, and the exported
weights serve: a bad tuning run must not take a server down.
"""
import json
import logging
from pathlib import Path

from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError
from modmt.runtime.merge_weights import MergeWeights, parse_weights

TUNED_FILE = "tuned_weights.json"
GRID = ("1:9", "2:8", "3:7", "5:5", "7:3", "9:1")  # modmt-tune's ratios: the paper's four, and 2:8 and 5:5
log = logging.getLogger(__name__)


def write_tuned_weights(base_dir: Path, record: dict) -> Path:
    """Merge record's directions into base_dir's file (a run over some directions keeps the others')."""
    path = Path(base_dir) / TUNED_FILE
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))["directions"] if path.exists() else {}
    except (ValueError, KeyError, TypeError):
        earlier = {}
    write_json_atomic(path, {**record, "directions": {**earlier, **record["directions"]}})
    return path


def read_tuned_weights(base_dir: Path) -> dict[tuple[str, str], tuple[MergeWeights, dict]]:
    """{(src, tgt): (weights, its record)} of base_dir's tuned directions; {} without a file."""
    path = Path(base_dir) / TUNED_FILE
    if not path.exists():
        return {}
    try:
        directions = json.loads(path.read_text(encoding="utf-8"))["directions"]
        tuned = {}
        for key, entry in directions.items():
            src, tgt = key.split("-", 1)
            tuned[(src, tgt)] = (parse_weights(str(entry["w"])), entry)
        return tuned
    except (ValueError, KeyError, TypeError, AttributeError, ModmtError) as e:
        log.warning(f"{path} is unreadable ({type(e).__name__}: {e}); serving the exported weights (run modmt-tune "
                    "again to replace it)")
        return {}
