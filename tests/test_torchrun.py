"""Adapter training under `torchrun --nproc-per-node 2` (gloo, CPU): the same adapter as one process."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modmt.runtime.languages import load_registry
from modmt.train.adapters import LoraSettings, train_pool
from modmt.train.corpus import open_corpus
from modmt.train.tiny import write_tiny_corpus
from modmt.train.trainer import TrainSettings

gloo = torch.distributed.is_available() and torch.distributed.is_gloo_available()


@pytest.mark.skipif(not gloo, reason="this torch build has no torch.distributed with gloo")
def test_two_processes_train_the_adapter_one_process_trains(tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    # Dropout off: its random masks are the one thing that differs between the two runs by design.
    train_pool(tiny_model_dir, open_corpus(corpus, load_registry()), load_registry(), ["ja"], tmp_path / "one",
               LoraSettings(rank=4, alpha=8, dropout=0.0), TrainSettings(epochs=1, learning_rate=5e-3, batch_size=8))
    command = [str(Path(sys.executable).parent / "torchrun"), "--nproc-per-node", "2", "-m", "modmt.train.cli",
               "adapters", "--model", str(tiny_model_dir), "--data", str(corpus), "--langs", "ja",
               "--out", str(tmp_path / "two"), "--rank", "4", "--alpha", "8", "--dropout", "0", "--epochs", "1",
               "--lr", "5e-3", "--batch-size", "8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # Rank 0 alone reports and writes: one summary line per adapter, and pool.json says 2 processes.
    printed = result.stdout + result.stderr
    assert printed.count("in/ja: 16 pairs") == 1 and printed.count("out/ja: 16 pairs") == 1
    one, two = (json.loads((tmp_path / name / "pool.json").read_text()) for name in ("one", "two"))
    for key in ("in/ja", "out/ja"):
        assert two["adapters"][key]["train"]["processes"] == 2 and one["adapters"][key]["train"]["processes"] == 1
        # Global batch 8 = 2 x 4: the same number of optimizer steps over the same examples.
        assert two["adapters"][key]["steps"] == one["adapters"][key]["steps"] == 2
        a, b = (load_file(tmp_path / name / key / "adapter_model.safetensors") for name in ("one", "two"))
        assert a.keys() == b.keys()
        # Same adapter: every tensor within 1% of its own largest entry (measured here: at most 0.22%, on a
        # lora_A, whose first update Adam takes from a near-zero gradient; lora_B within 0.005%). The
        # processes average their own batches' losses, which weighs tokens slightly differently.
        for name in a:
            moved = (a[name] - b[name]).abs().max().item()
            assert moved <= 0.01 * a[name].abs().max().item(), f"{key} {name} moved by {moved}"
        assert any((b[name] != 0).any() for name in b if "lora_B" in name), f"{key} did not train"
    assert not list((tmp_path / "two").glob(".*.tmp*")) and not (tmp_path / "two" / ".work" / "in-ja").exists()


def test_batch_size_must_split_over_the_processes(monkeypatch):
    from modmt.runtime.errors import ModmtError
    from modmt.train.distributed import per_process_batch

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert per_process_batch(8) == 4
    with pytest.raises(ModmtError, match="multiple of the 2 training processes; pass --batch-size 6"):
        per_process_batch(7)
