"""Print how fast the course GPT trains, next to a reference GPT, and how far a time budget gets it.

Usage: .venv/bin/python benchmarks/minigpt_training.py [--only throughput|budget] [--budget-s 300]
       [--device cpu] [--threads 2] [--n-layer 3 --n-head 4 --n-embd 128 --block-size 128]
       [--batch-size 16 --lr 3e-3 --min-lr 1e-4 --warmup 100] [--optimizer adamw|muon] [--compile]
       [--json results.json] [--race optimizer_race.json]

(a) throughput: the course GPT (:class:`attnlab.gpt.GPT`) and a straightforward reference GPT
    of the same config, written below from ``torch.nn`` modules the way nanoGPT's ``model.py``
    is (one packed q/k/v Linear, ``F.scaled_dot_product_attention(is_causal=True)``, tied
    embeddings), both trained by :func:`attnlab.train.train` itself (AdamW from
    ``make_optimizer`` unless ``--optimizer muon``, clipping by norm) on the same batches, in interleaved rounds; the
    median tokens/s of each and their ratio (course / reference, above 1: the course GPT is
    faster). On CUDA also with the trainer's autocast dtype (``precision_for``).
(b) budget: the course's default recipe (``attnlab.minigpt.Recipe``, with the overrides given)
    trained for ``--budget-s`` seconds through :func:`attnlab.minigpt.train_minigpt`; the
    cosine schedule decays by the fraction of the budget used. Prints tokens/s, the validation
    loss at 1, 2 and 5 minutes (the first evaluation at or after each) and at the end, and peak
    memory. With ``--race FILE`` the budget run is made once per optimizer (AdamW, then Muon) and
    the two are written to FILE, the record that chapter 9 shows.

Every option has a flag so a sweep is a loop of command lines, each with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

import attnlab.minigpt as minigpt
from attnlab.gpt import GPT, GPTConfig, GPTOutput
from attnlab.minigpt import Recipe, random_windows, shakespeare_splits, train_minigpt
from attnlab.train import OPTIMIZERS, precision_for, train

EVAL_AT_SECONDS = (60.0, 120.0, 300.0)


# ------------------------------------------------------------------ the reference GPT


class ReferenceAttention(nn.Module):
    """Causal self-attention with one packed q/k/v projection."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class ReferenceBlock(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = ReferenceAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias),
                                 nn.Dropout(config.dropout))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.mlp(self.ln_2(x))


class ReferenceGPT(nn.Module):
    """nanoGPT's shape: wte + wpe → pre-LN blocks → ln_f → tied lm_head. Same parameters as the course GPT."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(ReferenceBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(GPT._init_weights)  # the same initialisation as the course GPT

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        positions = torch.arange(idx.size(1), device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return GPTOutput(logits, loss)


def parameter_count(model: nn.Module) -> int:
    """Distinct parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ (a) throughput


def _loss_on(net, batch):
    return net(*batch).loss


def _maybe_compile(model: nn.Module, compile_: bool) -> nn.Module:
    return torch.compile(model) if compile_ else model


def throughput(recipe: Recipe, device: str, rounds: int = 5, steps: int = 10, warmup_steps: int = 2,
               compile_: bool = False, splits=None, verbose: bool = True, optimizer: str = "adamw") -> dict:
    """Tokens/s of the course GPT and the reference GPT, trained by ``train`` in interleaved rounds.

    Each round trains each model (alternating which goes first) for ``warmup_steps + steps``
    steps on the same batches; only the last ``steps`` are timed (the trainer's own clock).
    Returns, per precision, the tokens/s of every round and their medians and ratio. Both train
    with the same ``optimizer`` (AdamW by default: the models' speed, not the optimizer's).
    """
    device = torch.device(device)
    splits = splits or shakespeare_splits()
    config = replace(recipe.model, vocab_size=splits.tokenizer.vocab_size)
    torch.manual_seed(0)
    models = {"course": GPT(config).to(device), "reference": ReferenceGPT(config).to(device)}
    counts = {name: parameter_count(m) for name, m in models.items()}
    runnable = {name: _maybe_compile(m, compile_) for name, m in models.items()}
    sampler = torch.Generator().manual_seed(0)
    n = warmup_steps + steps
    batches = [tuple(t.to(device) for t in random_windows(splits.train, recipe.batch_size, config.block_size, sampler))
               for _ in range(n)]
    precisions = [False] + ([True] if precision_for(device, True)[0] is not None else [])
    result = {"parameters": counts, "config": asdict(config), "batch_size": recipe.batch_size,
              "rounds": rounds, "steps_per_round": steps, "compile": compile_, "optimizer": optimizer,
              "precisions": {}}
    for mixed in precisions:
        settings = recipe.settings.changed(steps=n, max_seconds=None, eval_every=None, eval_at_seconds=(),
                                           mixed_precision=mixed, optimizer=optimizer)
        label = str(precision_for(device, mixed)[0] or "float32").replace("torch.", "")
        speeds: dict[str, list[float]] = {"course": [], "reference": []}
        for r in range(rounds + 1):  # round 0 warms up (and compiles): not counted
            order = ["course", "reference"] if r % 2 else ["reference", "course"]
            for name in order:
                feed = iter(batches)
                history = train(runnable[name], _loss_on, lambda: next(feed), settings, progress=False)
                first, last = history.steps[warmup_steps - 1], history.steps[-1]
                if r:
                    speeds[name].append((last["tokens"] - first["tokens"]) / (last["seconds"] - first["seconds"]))
        medians = {name: statistics.median(v) for name, v in speeds.items()}
        ratio = medians["course"] / medians["reference"]
        result["precisions"][label] = {"tokens_per_second": speeds, "median": medians, "ratio": ratio}
        if verbose:
            print(f"  {label:>9}: course {medians['course']:>9,.0f} tok/s   reference {medians['reference']:>9,.0f} tok/s"
                  f"   ratio {ratio:.3f}   (rounds: course {[round(s) for s in speeds['course']]}, "
                  f"reference {[round(s) for s in speeds['reference']]})")
    return result


# ------------------------------------------------------------------ (b) a time budget


def _compiled_gpt(config: GPTConfig) -> nn.Module:
    """A course GPT behind torch.compile; attribute reads (config, token_embedding) reach the GPT itself."""
    return torch.compile(GPT(config))


def budget_run(recipe: Recipe, device: str, budget_s: float = 300.0, eval_at_seconds=EVAL_AT_SECONDS,
               compile_: bool = False, progress: bool = False, splits=None, verbose: bool = True) -> dict:
    """Train ``recipe`` for ``budget_s`` seconds through ``train_minigpt``; what it measured."""
    device = torch.device(device)
    eval_at = tuple(t for t in eval_at_seconds if t < budget_s)
    settings = recipe.settings.changed(steps=10**9, max_seconds=budget_s, eval_every=None, eval_at_seconds=eval_at)
    recipe = replace(recipe, settings=settings)
    splits = splits or shakespeare_splits()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # train_minigpt builds its own GPT: to compile it, build it through torch.compile instead.
    patched = mock.patch.object(minigpt, "GPT", _compiled_gpt) if compile_ else contextlib.nullcontext()
    started = time.perf_counter()
    with patched:
        trained = train_minigpt(recipe, splits, device=str(device), progress=progress)
    wall = time.perf_counter() - started
    h = trained.history
    evals = [{"seconds": row["seconds"], "step": row["step"], "val_loss": row["val_loss"]} for row in h.evals]
    at = {}
    for t in eval_at_seconds:
        row = next((e for e in evals if e["seconds"] >= t), None)
        at[f"{t:g}s"] = None if row is None else row["val_loss"]
    if device.type == "cuda":
        memory = {"peak_bytes": torch.cuda.max_memory_allocated(device), "kind": "torch.cuda.max_memory_allocated"}
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        memory = {"peak_bytes": rss, "kind": "peak RSS of the whole process (getrusage)"}
    result = {"budget_s": budget_s, "steps": len(h.steps), "seconds": h.seconds, "wall_s": wall, "tokens": h.tokens,
              "tokens_per_second": h.tokens_per_second, "precision": h.precision, "optimizer": h.optimizer,
              "stopped_by": h.stopped_by,
              "val_loss_at": at, "final_val_loss": evals[-1]["val_loss"], "evals": evals, "memory": memory,
              "parameters": parameter_count(trained.model), "recipe": minigpt._recipe_dict(recipe),
              "compile": compile_}
    if verbose:
        shown = "  ".join(f"{k}: {'—' if v is None else f'{v:.4f}'}" for k, v in at.items())
        print(f"  {len(h.steps)} steps in {h.seconds:.1f} s ({h.precision}, {h.optimizer}): "
              f"{h.tokens_per_second:,.0f} tokens/s")
        print(f"  validation loss  {shown}  final ({evals[-1]['seconds']:.0f} s): {evals[-1]['val_loss']:.4f}")
        print(f"  peak memory {memory['peak_bytes'] / 2**20:,.0f} MiB ({memory['kind']})")
    return result


def race_record(info: dict, runs: dict[str, dict]) -> dict:
    """The budget runs of each optimizer, cut to what chapter 9 shows (``optimizer_race.json``)."""
    keep = ("budget_s", "steps", "seconds", "tokens_per_second", "precision", "optimizer", "val_loss_at",
            "final_val_loss", "evals")
    return {"device": info["device_name"], "threads": info["threads"], "torch": info["torch"],
            "command": "python benchmarks/minigpt_training.py --only budget --threads 2 --race optimizer_race.json",
            "runs": {name: {k: run[k] for k in keep} for name, run in runs.items()}}


# ------------------------------------------------------------------ command line


def recipe_from(args: argparse.Namespace) -> Recipe:
    """The course's default Recipe with the command line's overrides."""
    base = Recipe()
    model_changes = {"n_layer": args.n_layer, "n_head": args.n_head, "n_embd": args.n_embd,
                     "block_size": args.block_size, "dropout": args.dropout}
    model = replace(base.model, **{k: v for k, v in model_changes.items() if v is not None})
    setting_changes = {"lr": args.lr, "min_lr": args.min_lr, "warmup_steps": args.warmup,
                       "weight_decay": args.weight_decay, "seed": args.seed, "clip_norm": args.clip_norm,
                       "optimizer": args.optimizer}
    if args.beta2 is not None:
        setting_changes["betas"] = (base.settings.betas[0], args.beta2)
    settings = base.settings.changed(**{k: v for k, v in setting_changes.items() if v is not None})
    return Recipe(model, settings, args.batch_size or base.batch_size)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("throughput", "budget"), help="run one part only (default: both)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when there is a GPU)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's choice)")
    p.add_argument("--budget-s", type=float, default=300.0, help="training seconds for the budget run (default 300)")
    p.add_argument("--eval-at", type=float, nargs="*", default=list(EVAL_AT_SECONDS),
                   help="report the validation loss at these training seconds (default 60 120 300)")
    p.add_argument("--rounds", type=int, default=5, help="throughput: timed rounds per model (default 5)")
    p.add_argument("--steps", type=int, default=10, help="throughput: timed steps per round (default 10)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (the compile time counts against the budget)")
    p.add_argument("--progress", action="store_true", help="show the trainer's progress bar in the budget run")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--race", type=Path, help="budget: run it once per optimizer and write what chapter 9 shows here "
                                            "(the shipped one is attnlab/checkpoints/minigpt/optimizer_race.json)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="budget: override the recipe's optimizer; throughput: both models' (default adamw)")
    for flag, kind in (("--n-layer", int), ("--n-head", int), ("--n-embd", int), ("--block-size", int),
                       ("--dropout", float), ("--batch-size", int), ("--lr", float), ("--min-lr", float),
                       ("--warmup", int), ("--weight-decay", float), ("--beta2", float), ("--clip-norm", float),
                       ("--seed", int)):
        p.add_argument(flag, type=kind, help="override the recipe's value")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from attnlab.device import pick_device

    device = args.device or pick_device()
    recipe = recipe_from(args)
    where = torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else platform.processor() or "cpu"
    info = {"device": device, "device_name": where, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "argv": sys.argv[1:] if argv is None else argv}
    print(f"torch {info['torch']}, device {device} ({where}), {info['threads']} threads")
    print("recipe:", json.dumps(minigpt._recipe_dict(recipe)))
    splits = shakespeare_splits()
    results: dict = {"info": info}
    if args.only in (None, "throughput"):
        print(f"\n(a) training throughput, course GPT vs reference GPT, median of {args.rounds} interleaved rounds "
              f"of {args.steps} steps (ratio = course / reference):")
        results["throughput"] = throughput(recipe, device, args.rounds, args.steps, compile_=args.compile, splits=splits,
                                           optimizer=args.optimizer or "adamw")
    if args.only in (None, "budget") and args.race:
        runs = {}
        for name in OPTIMIZERS:
            print(f"\n(b) {args.budget_s:g} s of training through train_minigpt with optimizer={name!r}:")
            runs[name] = budget_run(replace(recipe, settings=recipe.settings.changed(optimizer=name)), device,
                                    args.budget_s, tuple(args.eval_at), args.compile, args.progress, splits=splits)
        results["race"] = race_record(info, runs)
        args.race.write_text(json.dumps(results["race"], indent=1))
        print(f"\nwrote {args.race}")
    elif args.only in (None, "budget"):
        print(f"\n(b) {args.budget_s:g} s of training through train_minigpt:")
        results["budget"] = budget_run(recipe, device, args.budget_s, tuple(args.eval_at), args.compile,
                                       args.progress, splits=splits)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    main()
