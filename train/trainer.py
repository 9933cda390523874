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
    # Recompute each decoder layer's activations in the backward pass instead of keeping them: the
    # same gradients, ~30 % more compute, and activations no longer grow with every layer (for the
    # 0.5B model at batch 8 they are most of training's memory, docs/results.md).
    gradient_checkpointing: bool = False
    # Examples per forward/backward pass; the optimizer still steps once per batch_size examples
    # (gradient accumulation, with the loss normalised over the whole batch's target tokens), so the
    # adapter is the same while activation memory shrinks with the micro-batch. None: the whole batch.
    micro_batch_size: int | None = None

    def check(self) -> None:
        if self.epochs <= 0 or self.learning_rate <= 0 or self.batch_size < 1 or self.max_length < 8:
            raise ModmtError("epochs and learning rate must be > 0, batch size >= 1, max length >= 8")
        if self.micro_batch_size is not None and (self.micro_batch_size < 1 or self.batch_size % self.micro_batch_size):
            raise ModmtError(f"--micro-batch-size {self.micro_batch_size} must divide --batch-size {self.batch_size}")
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


class LabelPositionTrainer(Trainer):
    """Trainer whose loss projects to the vocabulary only where a label is.

    A causal LM's loss needs logits at the target tokens only, but the model's own loss computes
    them at every position: for a 150k-word vocabulary at batch 8 that is gigabytes of logits,
    log-softmax and their gradients, most of it for the prompt. Here the model returns logits from
    the first position any row of the batch predicts a label at (`logits_to_keep`, which every
    transformers causal LM takes, applied before any final soft-capping), and the loss is the
    model's own: summed token cross-entropy over the labelled tokens divided by their count (or by
    Trainer's num_items_in_batch), so training is unchanged up to float rounding (tested).
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        labels = inputs["labels"]
        targets = labels[:, 1:]                       # position t predicts token t + 1
        labelled = (targets != -100).any(dim=0).nonzero()
        first = int(labelled[0]) if len(labelled) else targets.shape[1] - 1
        keep = torch.arange(first, labels.shape[1] - 1, device=labels.device)
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], logits_to_keep=keep)
        logits = outputs.logits.float()
        picked = targets[:, first:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), picked.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        # As Trainer does: divide by the whole accumulated batch's token count only where the model
        # takes it (then Trainer does not also divide by the accumulation steps), else by this micro-batch's.
        whole_batch = self.model_accepts_loss_kwargs and num_items_in_batch is not None
        loss = loss / (num_items_in_batch if whole_batch else (picked != -100).sum())
        if self.args.average_tokens_across_devices and whole_batch:
            loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss: DDP averages the gradients
        return (loss, outputs) if return_outputs else loss


def causal_model(model):
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def accepts_logits_to_keep(model) -> bool:
    from inspect import signature

    return "logits_to_keep" in signature(causal_model(model).forward).parameters


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
    process_batch = per_process_batch(settings.batch_size)
    micro_batch = min(settings.micro_batch_size or process_batch, process_batch)
    if process_batch % micro_batch:
        raise ModmtError(f"--micro-batch-size {micro_batch} must divide each process's batch of {process_batch}")
    args = TrainingArguments(
        output_dir=str(work_dir), num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
        per_device_train_batch_size=micro_batch, gradient_accumulation_steps=process_batch // micro_batch,
        seed=settings.seed, data_seed=settings.seed,
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
    causal = causal_model(model)
    if settings.gradient_checkpointing:  # on the transformers model itself: PEFT's wrapper does not pass it on
        causal.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainer_class = LabelPositionTrainer if accepts_logits_to_keep(model) else Trainer
    trainer = trainer_class(model=model, args=args, train_dataset=examples, data_collator=PadCollator(pad_id),
                      callbacks=callbacks)
    started = time.perf_counter()
    resumed = resume and bool(checkpoints)
    first_step = int(checkpoints[-1].name.split("-")[1]) if resumed else 0
    try:
        result = trainer.train(resume_from_checkpoint=True if resumed else None)
    finally:
        if settings.gradient_checkpointing:
            causal.gradient_checkpointing_disable()  # the base is shared with the next adapter and with inference
    seconds = time.perf_counter() - started
    tokens_trained = (trainer.state.global_step - first_step) * tokens / steps_per_epoch
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"steps": trainer.state.global_step, "examples": len(examples), "tokens": tokens,
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "mean_loss": result.training_loss, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens_trained / max(seconds, 1e-9), 1),
            "resumed_from": checkpoints[-1].name if resumed else None}
