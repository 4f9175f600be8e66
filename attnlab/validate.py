"""Checks shared by the public functions: each raises :class:`~attnlab.errors.InputError`
with a message that says what was wrong and what to do instead."""

from __future__ import annotations

import math
import numbers

import numpy as np

from attnlab.errors import InputError


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def whole_number(value: object, what: str, minimum: int = 0) -> int:
    """``value`` as an int ≥ ``minimum``; booleans, floats and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise InputError(f"{what} must be a whole number (at least {minimum}), not {_kind(value)} {value!r}.")
    if value < minimum:
        raise InputError(f"{what} must be at least {minimum}, got {value}.")
    return int(value)


def positive_number(value: object, what: str) -> float:
    """``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise InputError(f"{what} must be a positive number such as 1.0, not {_kind(value)} {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{what} must be a positive, finite number such as 1.0, got {value}.")
    return value


def numeric_array(value: object, what: str, min_dims: int = 1) -> np.ndarray:
    """A float NumPy array with at least ``min_dims`` dimensions, every entry finite."""
    if value is None or isinstance(value, (str, bytes)):
        raise InputError(f"{what} must be an array of numbers, not {_kind(value)}.")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be an array of numbers (a NumPy array or nested lists of equal length), "
                         f"not {_kind(value)}.") from None
    if array.ndim < min_dims:
        raise InputError(f"{what} must have at least {min_dims} dimension(s), got shape {array.shape}: "
                         "give one row per token.")
    if np.isnan(array).any():
        raise InputError(f"{what} contains NaN (not a number): check the computation that produced it.")
    return array


def tensor(value: object, what: str, min_dims: int = 1, floating: bool = True):
    """A torch tensor with at least ``min_dims`` dimensions (floating-point unless told otherwise)."""
    import torch

    if not isinstance(value, torch.Tensor):
        hint = " (this is the PyTorch version; the NumPy one ends in _np)" if isinstance(value, np.ndarray) else ""
        raise InputError(f"{what} must be a torch tensor, not {_kind(value)}{hint}: use torch.tensor(...).")
    if value.dim() < min_dims:
        raise InputError(f"{what} must have at least {min_dims} dimension(s), got shape {tuple(value.shape)}.")
    if floating and not value.is_floating_point():
        raise InputError(f"{what} must hold floating-point numbers, not {value.dtype}: use .float().")
    return value


def device(value: object):
    """A ``torch.device`` that exists on this machine (``None`` stays ``None``)."""
    import torch

    if value is None:
        return None
    try:
        chosen = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device {value!r} is not a device name: use 'cpu' or 'cuda' (or leave it out).") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {value!r} was asked for, but PyTorch sees no GPU here: "
                         "use device='cpu' or leave device out.")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise InputError(f"device {value!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {value!r} was asked for, but there is no Apple GPU here: use 'cpu'.")
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {value!r} is not supported by the course: use 'cpu' or 'cuda'.")
    return chosen
