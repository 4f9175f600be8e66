"""Where the course's code runs: CUDA when there is a GPU, the CPU otherwise."""

from __future__ import annotations

import random

import numpy as np


def pick_device() -> str:
    """Return "cuda" when PyTorch sees a GPU, else "cpu" (also when PyTorch is missing)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and (if installed) PyTorch's random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def setup(seed: int = 0, verbose: bool = True) -> str:
    """Seed every generator, pick the device, say what was found; return the device name."""
    from attnlab import __version__

    seed_everything(seed)
    device = pick_device()
    if verbose:
        where = "a GPU (CUDA)" if device == "cuda" else "the CPU (no GPU found; every lab runs fine on it)"
        print(f"attnlab {__version__} ready: running on {where}; random seed {seed}.")
    return device
