"""Training under several processes (`torchrun`, `accelerate launch`): who writes, and the global batch.

Trainer runs data-parallel when launched this way; what it does not know is that modmt's files
(the pool, pool.json, the full model) must be written by one process only, and that --batch-size
means the global batch (so one process and N processes train the same adapter).
"""
import os

from modmt.runtime.errors import ModmtError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 (or a plain, single process): the one that writes."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_main_process() -> None:
    """A barrier: the other ranks continue only once rank 0 has written what they may read next."""
    if world_size() == 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():  # Trainer (accelerate) reuses this process group when it starts
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    dist.barrier()


def per_process_batch(global_batch: int) -> int:
    """Each process's share of --batch-size (the global batch), which must divide evenly."""
    n = world_size()
    if global_batch % n:
        raise ModmtError(f"--batch-size {global_batch} is the global batch and must be a multiple of the "
                         f"{n} training processes; pass --batch-size {max(n, global_batch - global_batch % n)}")
    return global_batch // n
