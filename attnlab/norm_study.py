"""Chapter 6's experiment: one deep stack trained with post-LN and with pre-LN, with and without warmup.

A tiny character-level language model (embeddings, ``n_layers`` causal
:class:`~attnlab.blocks.TransformerBlock` s, a linear read-out) learns to predict the next
character of a slice of Hamlet. :func:`run_study` trains it for every norm placement × warmup
× seed and returns one row per training step; :func:`final_losses` sums the runs up and
:func:`loss_curves` draws them with seaborn (mean and range over the seeds).
Sized to take seconds on a laptop's CPU: that is the point, it runs in every book build.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attnlab import validate
from attnlab.blocks import TransformerBlock
from attnlab.errors import InputError
from attnlab.render import progress as progress_bar

#: The names the results use for the two placements of LayerNorm.
POST_LN, PRE_LN = "post-LN", "pre-LN"


@dataclass(frozen=True)
class StudySettings:
    """Sizes of the stack and of its training; the defaults are the chapter's."""

    n_layers: int = 8
    d_model: int = 32
    n_heads: int = 4
    seq_len: int = 32
    batch_size: int = 8
    steps: int = 100
    peak_lr: float = 1e-2
    warmup_steps: int = 50
    text_chars: int = 20_000

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "seq_len", "batch_size", "steps", "text_chars"):
            validate.whole_number(getattr(self, name), name, minimum=1)
        validate.whole_number(self.warmup_steps, "warmup_steps", minimum=0)
        validate.positive_number(self.peak_lr, "peak_lr")
        if self.d_model % self.n_heads:
            raise InputError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}.")

    def changed(self, **changes) -> StudySettings:
        """A copy with some settings changed, e.g. ``settings.changed(n_layers=12)``."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise InputError(f"unknown setting(s) {sorted(unknown)}: choose from {sorted(asdict(self))}.")
        return replace(self, **changes)


class CharStack(nn.Module):
    """Characters → embeddings + positions → ``n_layers`` causal blocks → (final LN if pre-LN) → next-character logits."""

    def __init__(self, vocab_size: int, settings: StudySettings, norm_first: bool):
        super().__init__()
        s = settings
        self.embed = nn.Embedding(vocab_size, s.d_model)
        self.position = nn.Embedding(s.seq_len, s.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(s.d_model, s.n_heads, norm_first=norm_first)
                                    for _ in range(s.n_layers))
        self.final_norm = nn.LayerNorm(s.d_model) if norm_first else nn.Identity()  # pre-LN ends with one more LN
        self.read_out = nn.Linear(s.d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) character ids → (B, T, vocab) logits for the next character."""
        positions = torch.arange(ids.size(1), device=ids.device)
        x = self.embed(ids) + self.position(positions)  # (B, T, C)
        for block in self.blocks:
            x, _ = block(x, is_causal=True)
        return self.read_out(self.final_norm(x))


def char_data(n_chars: int = 20_000) -> tuple[torch.Tensor, list[str]]:
    """The first ``n_chars`` characters of Hamlet as ids, and the characters (the vocabulary)."""
    from attnlab.corpus import shakespeare

    n_chars = validate.whole_number(n_chars, "n_chars", minimum=2)
    text = shakespeare(["hamlet"])[:n_chars]
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    return torch.tensor([index[ch] for ch in text]), vocab


def unigram_entropy(ids: torch.Tensor) -> float:
    """Cross-entropy (nats) of always guessing each character with its frequency: the 'no context' level."""
    counts = torch.bincount(ids.flatten()).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def lr_at(step: int, peak_lr: float, warmup_steps: int) -> float:
    """Learning rate at ``step`` (0-based): a straight ramp up to ``peak_lr`` over ``warmup_steps``, then flat."""
    if warmup_steps <= 0:
        return peak_lr
    return peak_lr * min(1.0, (step + 1) / warmup_steps)



@contextmanager
def _one_thread(device: str):
    """Tiny matrices: on a CPU one thread is faster than several that wait for each other."""
    before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this PyTorch can (the same maths, a little faster), else foreach."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older PyTorch, or a device without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, foreach=True)


def train_stack(norm_first: bool, warmup: bool, seed: int, settings: StudySettings = StudySettings(),
                data: torch.Tensor | None = None, device: str | torch.device = "cpu") -> list[float]:
    """Train one stack with Adam from seed ``seed``; the training loss at every step (NaN once it diverged)."""
    if data is None:
        data, _ = char_data(settings.text_chars)
    validate.tensor(data, "data", floating=False)
    if data.numel() <= settings.seq_len + 1:
        raise InputError(f"the text has {data.numel()} characters: it needs more than seq_len + 1 = "
                         f"{settings.seq_len + 1}.")
    device = validate.device(device) or torch.device("cpu")
    vocab_size = int(data.max()) + 1
    torch.manual_seed(seed)  # the same seed: the same initial weights for post-LN and pre-LN
    model = CharStack(vocab_size, settings, norm_first).to(device)
    sampler = torch.Generator().manual_seed(seed)  # and the same batches
    optimiser = _adam(model.parameters(), settings.peak_lr)
    offsets = torch.arange(settings.seq_len + 1)
    warmup_steps = settings.warmup_steps if warmup else 0
    losses = []
    with _one_thread(device.type):
        for step in range(settings.steps):
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step, settings.peak_lr, warmup_steps)
            starts = torch.randint(0, data.numel() - settings.seq_len - 1, (settings.batch_size, 1), generator=sampler)
            chunk = data[starts + offsets].to(device)  # (B, T + 1)
            logits = model(chunk[:, :-1])  # (B, T, vocab)
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), chunk[:, 1:].reshape(-1))
            if not torch.isfinite(loss):  # diverged: nothing more to learn from this run
                losses += [math.nan] * (settings.steps - step)
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    return losses


def run_study(settings: StudySettings = StudySettings(), seeds: tuple[int, ...] = (0, 1, 2), device: str | None = "cpu",
              progress: bool = True, smooth: int = 10, norms: tuple[str, ...] = (POST_LN, PRE_LN),
              warmups: tuple[bool, ...] = (False, True)):
    """Every norm placement × warmup × seed, trained; a pandas DataFrame with one row per run and step.

    ``norms`` and ``warmups`` pick a subset of the four settings, e.g. ``norms=("post-LN",), warmups=(False,)``.

    Columns: ``norm`` ("post-LN" / "pre-LN"), ``warmup`` ("with warmup" / "no warmup"), ``seed``,
    ``step``, ``loss`` and ``smoothed`` (the loss averaged over the last ``smooth`` steps).
    """
    import pandas as pd

    if not isinstance(settings, StudySettings):
        raise InputError(f"settings must be a StudySettings, not {type(settings).__name__}.")
    seeds = [validate.whole_number(seed, "seed") for seed in seeds]
    if not seeds:
        raise InputError("give at least one seed, e.g. seeds=(0, 1, 2).")
    smooth = validate.whole_number(smooth, "smooth", minimum=1)
    validate.device(device)  # a friendly error before the first run, not inside it
    unknown = [norm for norm in norms if norm not in (POST_LN, PRE_LN)]
    if unknown or not norms or not warmups:
        raise InputError(f"norms must name {POST_LN!r} and/or {PRE_LN!r}, and warmups hold False and/or True; "
                         f"got norms={norms!r}, warmups={warmups!r}.")
    data, _ = char_data(settings.text_chars)
    runs = [(norm == PRE_LN, bool(warmup), seed) for norm in norms for warmup in warmups for seed in seeds]
    frames = []
    for norm_first, warmup, seed in progress_bar(runs, desc="training", unit="run", disable=not progress):
        losses = train_stack(norm_first, warmup, seed, settings, data, device)
        frame = pd.DataFrame({"norm": PRE_LN if norm_first else POST_LN,
                              "warmup": "with warmup" if warmup else "no warmup", "seed": seed,
                              "step": np.arange(1, len(losses) + 1), "loss": losses})
        frame["smoothed"] = frame["loss"].rolling(smooth, min_periods=1).mean()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def final_losses(results, last: int = 10):
    """Per run, the mean loss of its ``last`` steps; then per setting the mean, the spread (std) and range over seeds."""
    last = validate.whole_number(last, "last", minimum=1)
    tail = results[results["step"] > results["step"].max() - last]
    per_run = tail.groupby(["norm", "warmup", "seed"], sort=False)["loss"].mean().rename("final")
    summary = per_run.groupby(["norm", "warmup"], sort=False).agg(["mean", "std", "min", "max"])
    return summary, per_run


def loss_curves(results, reference: float | None = None, title: str | None = None):
    """Seaborn line plot: smoothed loss against step, mean and range over seeds; colour and dashes = norm, panel = warmup.

    ``reference`` draws a dotted line (e.g. the unigram entropy: 'knows the letter frequencies only').
    Returns the Matplotlib figure, white background, colour-blind-safe colours.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    palette = dict(zip((POST_LN, PRE_LN), sns.color_palette("colorblind", 2)))
    # One panel above the other: the figure stays about 420 px wide, readable on a phone.
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95):
        grid = sns.relplot(data=results, x="step", y="smoothed", hue="norm", style="norm", row="warmup",
                           row_order=["no warmup", "with warmup"], hue_order=[POST_LN, PRE_LN], kind="line",
                           errorbar=("pi", 100), palette=palette, height=2.5, aspect=1.7, linewidth=2,
                           facet_kws={"despine": False, "sharex": True, "sharey": True})
        grid.set_titles("{row_name}")
        grid.set_axis_labels("training step", "loss (nats / char)")
        if reference is not None:
            for ax in grid.axes.flat:
                ax.axhline(reference, color="0.35", linestyle=":", linewidth=1.5)
            grid.axes.flat[0].annotate("letter frequencies only", (results["step"].max(), reference),
                                       xytext=(0, -3), textcoords="offset points", ha="right", va="top",
                                       fontsize=9, color="0.3")
        sns.move_legend(grid, "lower center", bbox_to_anchor=(0.5, 0.0), ncol=2, title=None, frameon=False)
        if title:
            grid.figure.suptitle(title, y=1.02)
        grid.figure.set_facecolor("white")
        grid.figure.set_size_inches(4.4, 5.3)
        grid.figure.subplots_adjust(left=0.17, right=0.97, top=0.94, bottom=0.17, hspace=0.3)
    plt.close(grid.figure)  # shown where it is returned, not twice
    return grid.figure
