"""Run transformers.Trainer on tokenized examples: modmt's defaults, progress with tokens/s, and resume."""
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import Trainer, TrainerCallback, TrainingArguments

from modmt.runtime.errors import ModmtError
from modmt.train.data import PadCollator
from modmt.train.distributed import is_main_process, per_process_batch, wait_for_main_process


@dataclass
class TrainSettings:
    epochs: float = 2.0            # the paper trains 2 epochs
    learning_rate: float = 2e-4    # LoRA default; the paper's 2e-5 is for full fine-tuning
    batch_size: int = 8
    max_length: int = 256
    seed: int = 0
    max_pairs: int | None = None   # cap on training pairs per adapter (CPU budgets)
    save_steps: int = 100          # checkpoint interval, what --resume restarts from

    def check(self) -> None:
        if self.epochs <= 0 or self.learning_rate <= 0 or self.batch_size < 1 or self.max_length < 8:
            raise ModmtError("epochs and learning rate must be > 0, batch size >= 1, max length >= 8")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ModmtError("--max-pairs must be at least 1")

    def to_json(self) -> dict:
        return asdict(self)


class _TokensPerSecond(TrainerCallback):
    """Adds tokens/s to each logged line, so the progress output shows throughput beside the loss."""

    def __init__(self, tokens_per_step: float):
        self.tokens_per_step, self.start, self.start_step = tokens_per_step, None, 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.start_step = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs and self.start is not None:
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            logs["tokens/s"] = round((state.global_step - self.start_step) * self.tokens_per_step / elapsed, 1)


class _StopAfterCheckpoint(TrainerCallback):
    """Simulates a kill right after the checkpoint at `step` is written (for resume tests)."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt(f"stopped after checkpoint {state.global_step}")


def run_trainer(model, examples: list[dict], pad_id: int, work_dir: Path, settings: TrainSettings,
                resume: bool, stop_after_step: int | None = None) -> dict:
    """Train `model` in place on `examples`; checkpoints go to work_dir. Returns loss and speed figures."""
    import torch

    if not examples:
        raise ModmtError("no training examples left (all pairs longer than --max-length?)")
    checkpoints = sorted(work_dir.glob("checkpoint-*"))
    if checkpoints and not resume and is_main_process():
        shutil.rmtree(work_dir)  # stale checkpoints of an earlier, different run
    wait_for_main_process()
    steps_per_epoch = -(-len(examples) // settings.batch_size)
    total_steps = int(steps_per_epoch * settings.epochs + 0.999)
    args = TrainingArguments(
        output_dir=str(work_dir), num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
        per_device_train_batch_size=per_process_batch(settings.batch_size), seed=settings.seed, data_seed=settings.seed,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=1,
        logging_strategy="steps", logging_steps=max(1, total_steps // 10), report_to=[],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        # Without a GPU, torchrun's processes only train data-parallel (gloo) when told they are on the CPU.
        use_cpu=not torch.cuda.is_available(),
    )
    tokens = sum(len(ex["input_ids"]) for ex in examples)
    callbacks = [_TokensPerSecond(tokens / steps_per_epoch)]
    if stop_after_step is not None:
        callbacks.append(_StopAfterCheckpoint(stop_after_step))
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=PadCollator(pad_id),
                      callbacks=callbacks)
    started = time.perf_counter()
    resumed = resume and bool(checkpoints)
    first_step = int(checkpoints[-1].name.split("-")[1]) if resumed else 0
    result = trainer.train(resume_from_checkpoint=True if resumed else None)
    seconds = time.perf_counter() - started
    tokens_trained = (trainer.state.global_step - first_step) * tokens / steps_per_epoch
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"steps": trainer.state.global_step, "examples": len(examples), "tokens": tokens,
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "mean_loss": result.training_loss, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens_trained / max(seconds, 1e-9), 1),
            "resumed_from": checkpoints[-1].name if resumed else None}
