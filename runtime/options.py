"""click parameter types for every numeric option: a bad value is a one-line usage error, exit 2."""
import math

import click

# Every numeric option has an upper bound too: a server or a script multiplies any unchecked value,
# and a 20-digit --batch should be a usage error, not a crash deep in numpy.
COUNT_LIMIT = 10_000_000
POSITIVE_INT = click.IntRange(min=1, max=COUNT_LIMIT)
NON_NEGATIVE_INT = click.IntRange(min=0, max=2**32 - 1)   # seeds: numpy's limit
BEAM = click.IntRange(min=1, max=64)
BATCH = click.IntRange(min=1, max=1024)
NEW_TOKENS = click.IntRange(min=1, max=32_768)
INPUT_TOKENS = click.IntRange(min=1, max=131_072)
SEQUENCE_LENGTH = click.IntRange(min=8, max=131_072)
RANK = click.IntRange(min=1, max=4096)
ROUNDS = click.IntRange(min=1, max=100)   # a benchmark's alternating rounds


def cpu_threads() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# CPU threads: more than this machine's cores only slows ONNX Runtime down (512 threads took 12 s to load
# and 24 s for two lines on 2 cores), so they are refused.
THREADS = click.IntRange(min=1, max=cpu_threads())


class FiniteFloat(click.ParamType):
    """A float that is not NaN or infinite, optionally bounded: (low, high) with open or closed ends."""

    name = "float"

    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            self.fail(f"{value} is not {'>' if self.low_open else '>='} {self.low}", param, ctx)
        if self.high is not None and (number > self.high or (self.high_open and number == self.high)):
            self.fail(f"{value} is not {'<' if self.high_open else '<='} {self.high}", param, ctx)
        return number


POSITIVE_FLOAT = FiniteFloat(0.0, 1e9, low_open=True)
EPOCHS = FiniteFloat(0.0, 1000.0, low_open=True)
LEARNING_RATE = FiniteFloat(0.0, 10.0, low_open=True)
ANY_FLOAT = FiniteFloat()
DROPOUT = FiniteFloat(0.0, 1.0, high_open=True)
SHARE = FiniteFloat(0.0, 1.0, low_open=True, high_open=True)
