"""Budgets of a reproduce run: the languages, the merge ratios, and each profile's pairs, epochs, learning rates and samples."""
from dataclasses import dataclass


LANGS = ["en", "fr", "de", "ja", "zh"]
RATIOS = ("1:9", "3:7", "7:3", "9:1")
SCALES = (0.5, 0.75)  # merge weights summing to less than 1 (--w IN:OUT@S), in and out of domain
MIX_SHARE = 0.25  # of each adapter's pairs, from the out-of-domain corpus' train split (the `mix` stage)


@dataclass(frozen=True)
class Profile:
    name: str
    why: str
    adapter_pairs: int | None      # training pairs per adapter
    adapter_epochs: float
    adapter_lr: float
    full_pairs: int | None         # training pairs per direction (8 directions) for full fine-tuning
    full_epochs: float
    full_lr: float
    weight_pairs: int | None       # pairs per direction for weight learning
    weight_epochs: float
    weight_lr: float
    headline_segments: int | None  # devtest segments for base, full FT, LoRA_in/out, best ratios, learned
    other_segments: int | None     # devtest segments for the other ratio rows
    beam: int
    max_new_tokens: int
    batch: int = 8
    # The tuning search (dev split, not devtest): trials per side and the dev segments per direction
    # that score them. Both sides get the same number of trials, epochs and examples per language.
    full_lr_trials: tuple = ()
    adapter_lr_trials: tuple = ()
    tune_segments: int | None = None


PROFILES = {
    "paper": Profile(
        "paper", "The paper's settings as far as DDTP allows: up to 1,000 pairs per adapter (en-zh has 415), "
        "2 epochs, lr 2e-5 for full fine-tuning (2e-4 for LoRA, whose paper value 2e-5 barely moves rank-8 "
        "adapters in 250 steps), beam 5, the whole devtest split. Meant for a GPU.",
        1000, 2, 2e-4, 1000, 2, 2e-5, 200, 2, 0.05, None, None, 5, 128),
    "cpu": Profile(
        "cpu", "Sized so that every stage finishes within one 3-hour working session on 2 CPU cores "
        "(about 2 h measured, see the stage times): 96 pairs per adapter for 1 epoch at lr 1e-3 (12 steps; "
        "smaller learning rates did not move rank-8 adapters in so few steps), the same 96 pairs per "
        "direction for full fine-tuning (lr 5e-5: the paper's 2e-5 is for 2,000 steps, not 96), greedy "
        "decoding (3x cheaper than beam 5 on this CPU, which buys 3x the segments and so tighter intervals; "
        "all rows decode alike, so the comparisons stay fair), 50 devtest segments per direction for the "
        "headline rows and 12 for the other ratio rows (enough to pick the best ratio of each setting, which "
        "is then evaluated on 50).",
        96, 1, 1e-3, 96, 1, 5e-5, 24, 1, 0.1, 50, 12, 1, 64,
        full_lr_trials=(2e-5, 5e-5, 1e-4), adapter_lr_trials=(3e-4, 1e-3, 3e-3), tune_segments=24),
    "tiny": Profile(
        "tiny", "The built-in tiny model and toy corpus (tests): the numbers mean nothing.",
        8, 2, 1e-2, 8, 1, 1e-3, 4, 1, 0.1, 4, 3, 1, 8,
        full_lr_trials=(1e-3, 1e-2), adapter_lr_trials=(1e-2, 3e-2), tune_segments=3),
}
