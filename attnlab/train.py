"""The course's trainer: one loop for every model the course trains.

Chapter 8 writes the loop out once — forward, loss, backward, clip by norm, optimizer step,
schedule — and then hands it to :func:`train`, which adds what a real run needs: a tqdm bar,
a time budget, evaluation at chosen steps or seconds, mixed precision on a GPU, and a
history of everything it measured.

    >>> history = train(model, loss_on, next_batch, TrainSettings(steps=500))
    >>> history.frame()          # one row per step: loss, lr, gradient norm, seconds, ...
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from attnlab import validate
from attnlab.errors import InputError
from attnlab.render import progress as progress_bar


OPTIMIZERS = ("adamw", "muon")


@dataclass(frozen=True)
class TrainSettings:
    """How long and how fast to train; the defaults suit the course's small models."""

    steps: int = 1000  # at most this many optimizer steps
    max_seconds: float | None = None  # and at most this much training time (evaluation not counted)
    lr: float = 3e-3  # peak learning rate
    min_lr: float = 3e-4  # where the cosine decay ends
    warmup_steps: int = 100  # linear ramp from 0 to lr
    weight_decay: float = 0.1  # on weight matrices and embedding tables only, never on biases or norms
    betas: tuple[float, float] = (0.9, 0.99)
    clip_norm: float | None = 1.0  # rescale the whole gradient when its norm is larger; None: no clipping
    eval_every: int | None = None  # evaluate every this many steps (and at the end)
    eval_at_seconds: tuple[float, ...] = ()  # and when the training clock passes these times
    mixed_precision: bool = True  # on a GPU only: bf16 where supported, else fp16 with a gradient scaler
    optimizer: str = "adamw"  # or "muon": Muon for the matrices inside the model, AdamW for the rest
    seed: int = 0

    def __post_init__(self):
        validate.whole_number(self.steps, "steps", minimum=1)
        validate.whole_number(self.warmup_steps, "warmup_steps", minimum=0)
        validate.positive_number(self.lr, "lr")
        if self.max_seconds is not None:
            validate.positive_number(self.max_seconds, "max_seconds")
        if self.clip_norm is not None:
            validate.positive_number(self.clip_norm, "clip_norm")
        if self.eval_every is not None:
            validate.whole_number(self.eval_every, "eval_every", minimum=1)
        if not 0 <= self.min_lr <= self.lr:
            raise InputError(f"min_lr must be between 0 and lr={self.lr}, got {self.min_lr!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer {self.optimizer!r} is not one the trainer knows: use one of {list(OPTIMIZERS)}.")

    def changed(self, **changes) -> TrainSettings:
        """A copy with some settings changed, e.g. ``settings.changed(lr=1e-3)``."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise InputError(f"unknown setting(s) {sorted(unknown)}: choose from {sorted(asdict(self))}.")
        return replace(self, **changes)


def warmup_cosine(done: float, settings: TrainSettings, step: int) -> float:
    """Learning rate after ``step`` steps with ``done`` (0–1) of the run behind: linear warmup, then cosine decay."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    done = min(max(done, 0.0), 1.0)
    return settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (1 + math.cos(math.pi * done))


def transformer_2017_lr(step: int, d_model: int, warmup_steps: int = 4000) -> float:
    """The 2017 paper's schedule: d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), with steps counted from 1."""
    step = validate.whole_number(step, "step", minimum=1)
    d_model = validate.whole_number(d_model, "d_model", minimum=1)
    warmup_steps = validate.whole_number(warmup_steps, "warmup_steps", minimum=1)
    return d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.AdamW | MuonWithAdamW:
    """The optimizer ``settings.optimizer`` names: AdamW, or Muon for the hidden matrices with AdamW for the rest."""
    if settings.optimizer == "muon":
        if hasattr(torch.optim, "Muon"):
            return MuonWithAdamW(model, settings)
        warnings.warn(f"PyTorch {torch.__version__} has no torch.optim.Muon (it came in PyTorch 2.9): "
                      "training with AdamW instead.", stacklevel=2)
    return _adamw(model.parameters(), settings)


def _adamw(parameters, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only; fused into one kernel where this PyTorch can."""
    parameters = [p for p in parameters if p.requires_grad]
    groups = [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": settings.weight_decay},
              {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older PyTorch, or a device without the fused kernel
        return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas, foreach=True)


OUTPUT_LAYERS = ("lm_head", "generator", "read_out", "classifier")  # the course's names for a model's last layer


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The weight matrices of the model's ``nn.Linear`` layers, except its output layer and any tied to an embedding.

    These are the matrices that map one hidden vector to another, the ones Muon is made for. An
    embedding is a lookup table (row i is token i's vector), not a map, and the output layer turns
    vectors into scores for a vocabulary: AdamW keeps both, as Muon's authors do. An output layer is
    a Linear named in ``OUTPUT_LAYERS`` or one sharing its weight with an embedding table.
    """
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    found, seen = [], set()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.rsplit(".", 1)[-1] in OUTPUT_LAYERS:
            continue
        weight = module.weight
        if weight.requires_grad and id(weight) not in tables | seen:
            found.append(weight)
            seen.add(id(weight))
    return found


class MuonWithAdamW:
    """Muon for the hidden matrices, AdamW for everything else, stepped together as one optimizer.

    Muon (Jordan et al. 2024) keeps a momentum of its own (Nesterov, 0.95; no second moment as in
    Adam) and replaces each matrix's update by the nearest orthogonal matrix (a few Newton–Schulz
    iterations), so that every direction of the update moves the matrix by the same amount. ``adjust_lr_fn="match_rms_adamw"`` scales its step to the size
    of an AdamW step, so one learning rate and one schedule serve both halves.
    """

    def __init__(self, model: nn.Module, settings: TrainSettings):
        matrices = hidden_matrices(model)
        chosen = {id(p) for p in matrices}
        muon = torch.optim.Muon(matrices, lr=settings.lr, weight_decay=settings.weight_decay,
                                adjust_lr_fn="match_rms_adamw")
        adamw = _adamw((p for p in model.parameters() if id(p) not in chosen), settings)
        self.optimizers = (muon, adamw)

    @property
    def param_groups(self) -> list[dict]:
        """Every group of both: the schedule sets their learning rates, a GradScaler unscales them."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter."""
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """One step of both."""
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> dict:
        """Both optimizers' states."""
        return {"muon": self.optimizers[0].state_dict(), "adamw": self.optimizers[1].state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.optimizers[0].load_state_dict(state["muon"])
        self.optimizers[1].load_state_dict(state["adamw"])


def precision_for(device: torch.device, wanted: bool) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a gradient scaler is needed) for training on ``device``."""
    if not wanted or device.type != "cuda":
        return None, False  # a CPU trains in float32: autocast there is slower for models this small
    try:  # a T4 "supports" bf16 only by emulation, slower than fp16: ask about the hardware itself
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # PyTorch before 2.3 had no such argument
        native_bf16 = torch.cuda.is_bf16_supported()
    if native_bf16:
        return torch.bfloat16, False  # bf16 has float32's range: no scaler needed
    return torch.float16, True  # a T4: fp16 needs its loss scaled so small gradients do not round to 0


@dataclass
class History:
    """What a run measured: one row per step, one per evaluation, and the totals."""

    steps: list[dict] = field(default_factory=list)  # step, seconds, tokens, lr, loss, grad_norm
    evals: list[dict] = field(default_factory=list)  # step, seconds, tokens, and what evaluate() returned
    seconds: float = 0.0  # training time, evaluation not counted
    tokens: int = 0
    precision: str = "float32"
    optimizer: str = ""  # what trained: "AdamW", or "Muon + AdamW"
    stopped_by: str = ""  # "steps" or "time"

    @property
    def tokens_per_second(self) -> float:
        """Training throughput."""
        return self.tokens / self.seconds if self.seconds else float("nan")

    @property
    def losses(self) -> list[float]:
        """The training loss of every step."""
        return [row["loss"] for row in self.steps]

    def frame(self):
        """The per-step rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.steps)

    def eval_frame(self):
        """The evaluations as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.evals)


def _check_callables(**functions) -> None:
    for name, function in functions.items():
        if function is not None and not callable(function):
            raise InputError(f"{name} must be a function, not {type(function).__name__}.")


def train(model: nn.Module, loss_on: Callable, next_batch: Callable, settings: TrainSettings = TrainSettings(),
          evaluate: Callable | None = None, progress: bool = True, desc: str = "training") -> History:
    """Train ``model`` in place and return its :class:`History`.

    ``next_batch()`` returns a batch (already on the model's device); ``loss_on(model, batch)``
    returns the scalar loss; ``evaluate(model)`` (optional) returns a dict of numbers, called
    in eval mode without gradients at ``settings.eval_every`` steps, ``settings.eval_at_seconds``
    and at the end. A batch's token count is ``batch[0].numel()`` when it is a tuple.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, not {type(model).__name__}.")
    if not isinstance(settings, TrainSettings):
        raise InputError(f"settings must be a TrainSettings, not {type(settings).__name__}.")
    _check_callables(loss_on=loss_on, next_batch=next_batch, evaluate=evaluate)
    device = next(model.parameters()).device
    dtype, needs_scaler = precision_for(device, settings.mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    optimizer = make_optimizer(model, settings)
    history = History(precision=str(dtype).replace("torch.", "") if dtype else "float32",
                      optimizer="Muon + AdamW" if isinstance(optimizer, MuonWithAdamW) else "AdamW")
    pending_times = sorted(settings.eval_at_seconds)
    clock = 0.0

    def run_eval(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        with torch.no_grad():
            row = {"step": step, "seconds": round(clock, 3), "tokens": history.tokens, **evaluate(model)}
        model.train()
        history.evals.append(row)
        if bar is not None:
            shown = {k: f"{v:.3f}" for k, v in row.items() if k not in ("step", "seconds", "tokens") and isinstance(v, float)}
            bar.set_postfix(shown, refresh=False)

    model.train()
    bar = progress_bar(range(settings.steps), desc=desc, disable=not progress)
    step = 0
    for step in bar:
        started = time.perf_counter()
        done = step / settings.steps
        if settings.max_seconds:
            done = max(done, clock / settings.max_seconds)
        lr = warmup_cosine(done, settings, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next_batch()
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            loss = loss_on(model, batch)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        else:
            loss.backward()
        max_norm = settings.clip_norm if settings.clip_norm is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)  # the norm before clipping
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        loss_value = loss.item()  # waits for the GPU: the clock below is honest
        if not math.isfinite(loss_value):  # checked here, not before backward(), so a GPU need not wait mid-step
            raise InputError(f"the loss became {loss_value} at step {step}: the run diverged. "
                             "Try a smaller learning rate (lr) or keep clip_norm on.")
        clock += time.perf_counter() - started
        history.tokens += batch[0].numel() if isinstance(batch, (tuple, list)) else 0
        history.steps.append({"step": step + 1, "seconds": round(clock, 4), "tokens": history.tokens, "lr": lr,
                              "loss": loss_value, "grad_norm": float(grad_norm)})
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
        while pending_times and clock >= pending_times[0]:
            pending_times.pop(0)
            run_eval(step + 1)
        if settings.eval_every and (step + 1) % settings.eval_every == 0 and step + 1 < settings.steps:
            run_eval(step + 1)
        if settings.max_seconds and clock >= settings.max_seconds:
            break
    history.seconds = clock
    history.stopped_by = "time" if settings.max_seconds and clock >= settings.max_seconds else "steps"
    bar.close()
    if not history.evals or history.evals[-1]["step"] != len(history.steps):
        run_eval(len(history.steps))
    model.eval()
    return history
