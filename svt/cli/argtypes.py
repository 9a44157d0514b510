"""argparse types that reject out-of-range numbers up front, with the option's own words."""
from __future__ import annotations

import argparse
import math


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def probability(text: str) -> float:
    """A number strictly between 0 and 1 (decoding thresholds)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def bounded_float(low: float, high: float, low_open: bool = False):
    """An argparse type for a number in [low, high] ((low, high] with `low_open`), the range named
    in the message."""
    bounds = f"{'above' if low_open else 'from'} {low:g} {'up ' if low_open else ''}to {high:g}"

    def parse(text: str) -> float:
        value = _number(text)
        if low == 0 and (value < 0 or (low_open and value == 0)):
            rule = "must be greater than 0" if low_open else "must not be negative"
            raise argparse.ArgumentTypeError(f"{text} {rule} (expected {bounds})")
        if value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected {bounds}")
        return value
    return parse


#: `--pitch-precision`'s choices: `svt.models.pitch_network.PITCH_PRECISIONS` (the default
#: first), named here so that building a parser does not import torch.
PITCH_PRECISION_CHOICES = ("bfloat16", "float32")
PITCH_PRECISION_HELP = ("how the shipped model's pitch network (FCPE) computes: bfloat16 "
                        "products (default: 1.2-1.4x faster on a CPU with AVX-512, the same "
                        "scores) or float32 (FCPE exactly as in training, the same results on "
                        "every CPU)")
