"""click parameter types for every numeric option: a bad value is a one-line usage error, exit 2."""
import math

import click

POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)


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


POSITIVE_FLOAT = FiniteFloat(0.0, low_open=True)
ANY_FLOAT = FiniteFloat()
DROPOUT = FiniteFloat(0.0, 1.0, high_open=True)
