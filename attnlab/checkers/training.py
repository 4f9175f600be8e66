"""Checkers of chapter 8: one training step (with clipping by norm) and the 2017 learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

from attnlab.checkers.core import NOTHING_RETURNED, CheckResult, Mismatch, _needs_function, _run


# ---------------------------------------------------------------- chapter 8: the training step


def _tiny_setup(seed: int = 0):
    """A small reverser, a batch, and stale gradients left in .grad by an imaginary earlier step."""
    import torch

    from attnlab.seq2seq import batches, new_model

    model = new_model(d_model=16, seed=seed)
    batch = batches(16, 5, seed=seed)()
    generator = torch.Generator().manual_seed(seed + 1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)  # stale: zero_grad must remove these
    return model, batch


def _flat(tensors):
    import torch

    return torch.cat([t.detach().flatten() for t in tensors])


def check_training_step(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(model, batch, optimizer, max_norm)``: forward, teacher-forced cross-entropy, zero_grad,
    backward, clip the whole gradient by its norm, optimizer step; returns the loss as a number."""
    import torch

    from attnlab.seq2seq import sequence_loss

    _needs_function(fn)
    lr, max_norm = 0.5, 0.05  # plain SGD, so that the update is exactly -lr × the clipped gradient

    def reference():
        """The fresh gradient g (unclipped), the stale one, and the parameters before the step."""
        model, batch = _tiny_setup()
        stale = _flat(p.grad for p in model.parameters())
        before = _flat(model.parameters())
        model.zero_grad(set_to_none=True)
        loss = sequence_loss(model, batch)
        loss.backward()
        fresh = _flat(p.grad for p in model.parameters())
        return loss.item(), before, fresh, stale

    want_loss, before, fresh, stale = reference()

    def by_norm(g: torch.Tensor) -> torch.Tensor:
        return g * min(1.0, max_norm / (g.norm().item() + 1e-6))

    def learner_step():
        model, batch = _tiny_setup()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        result = fn(model, batch, optimizer, max_norm)
        update = (before - _flat(model.parameters())) / lr  # what the step applied, as a gradient
        grads = [p.grad for p in model.parameters()]
        return result, update, grads

    def loss_returned():
        result, _, _ = learner_step()
        if result is None:
            raise Mismatch(NOTHING_RETURNED + " Return the loss, e.g. `return loss.item()`.")
        try:
            value = float(result.detach() if hasattr(result, "detach") else result)
        except (TypeError, ValueError):
            raise Mismatch(f"return the loss as a number (loss.item()), not {type(result).__name__}.") from None
        if not math.isclose(value, want_loss, rel_tol=1e-4, abs_tol=1e-5):
            raise Mismatch(f"the loss should be the teacher-forced cross-entropy, {want_loss:.4f}: logits = "
                           f"model(src, decoder_input), then F.cross_entropy(logits.reshape(-1, V), "
                           f"target.reshape(-1)); got {value:.4f}.")

    def stepped():
        _, update, grads = learner_step()
        if update.abs().max() < 1e-9:
            if all(g is None or g.abs().max() == 0 for g in grads):
                raise Mismatch("the parameters did not move and the gradients are empty: call loss.backward() "
                               "after optimizer.zero_grad(), not the other way round, and before optimizer.step().")
            raise Mismatch("the parameters did not move: call optimizer.step() after clipping.")

    def zeroed():
        _, update, _ = learner_step()
        for clip in (by_norm, lambda g: g, lambda g: g.clamp(-max_norm, max_norm)):
            if torch.allclose(update, clip(fresh + stale), atol=1e-5):
                raise Mismatch("the step used the old gradients too: PyTorch ADDS each backward to .grad, so call "
                               "optimizer.zero_grad() before loss.backward().")

    def clipped_by_norm():
        _, update, grads = learner_step()
        if torch.allclose(update, fresh.clamp(-max_norm, max_norm), atol=1e-6):
            raise Mismatch("you clipped each value (clip_grad_value_ or clamp): that changes the gradient's "
                           "direction. Rescale the whole gradient instead: "
                           "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).")
        if torch.allclose(update, fresh, atol=1e-6):
            left = _flat(g for g in grads if g is not None)
            if left.numel() and left.norm() <= max_norm * 1.001:
                raise Mismatch("the gradients were clipped after optimizer.step(): too late, the step had already "
                               "used them. Clip between loss.backward() and optimizer.step().")
            raise Mismatch("the gradient was not clipped: call torch.nn.utils.clip_grad_norm_(model.parameters(), "
                           "max_norm) between loss.backward() and optimizer.step().")
        if not torch.allclose(update, by_norm(fresh), atol=1e-6):
            raise Mismatch(f"the step is not the gradient clipped to norm max_norm={max_norm}: use "
                           "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm), with the max_norm given.")

    return _run("training step", [("returns the loss", loss_returned), ("updates the parameters", stepped),
                                  ("forgets the old gradients", zeroed), ("clips by norm", clipped_by_norm)],
                verbose)


# ---------------------------------------------------------------- chapter 8: the 2017 schedule


def check_transformer_lr(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(step, d_model, warmup_steps)`` = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), steps from 1."""
    from attnlab.train import transformer_2017_lr

    _needs_function(fn)
    d_model, warmup = 512, 4000
    steps = [1, 100, 4000, 8000, 100_000]

    def number(step, d=d_model, w=warmup):
        value = fn(step, d, w)
        if value is None:
            raise Mismatch(NOTHING_RETURNED)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise Mismatch(f"return one number, the learning rate, not {type(value).__name__}.") from None

    def close(a, b):
        return math.isclose(a, b, rel_tol=1e-6)

    def warmup_part():
        got, want = number(100), transformer_2017_lr(100, d_model, warmup)
        if close(got, d_model ** -0.5 * 100 ** -0.5):  # the decay already while warming up
            if close(number(8000), transformer_2017_lr(8000, d_model, warmup)):
                # step · w^p = step^-0.5 at step = w^(-p / 1.5): w^(1/3) for p = -0.5, w itself only for p = -1.5
                if close(number(1), d_model ** -0.5 * warmup ** -0.5):
                    raise Mismatch(f"with warmup ** -0.5 the two terms of min() meet at step warmup^(1/3) "
                                   f"≈ {warmup ** (1 / 3):.0f}, not at step = warmup = {warmup}: the warmup is over "
                                   "almost at once. The warmup term is step · warmup^-1.5 (warmup ** -1.5), which "
                                   "meets step^-0.5 exactly at step = warmup.")
                raise Mismatch("at step 100 you already return the decay step^-0.5: the warmup term, "
                               "step · warmup^-1.5 (warmup ** -1.5), must be the smaller term of min() until "
                               "step = warmup; yours gives way much earlier, or is missing.")
            raise Mismatch("at step 100 you return the decay (step^-0.5): take the min of the two terms, "
                           "not the max, so that the rate first grows.")
        if close(got, 100 * warmup ** -1.5):
            raise Mismatch("multiply by d_model ** -0.5.")
        if close(got, d_model ** -0.5 * 100 * warmup ** -0.5) or close(got, d_model ** -0.5 * 100 / warmup):
            raise Mismatch("the warmup term is step · warmup^-1.5 (warmup ** -1.5), so that it meets step^-0.5 "
                           "exactly at step = warmup.")
        if close(got, d_model ** -0.5 * 99 * warmup ** -1.5):
            raise Mismatch("count steps from 1, as the paper does: use step itself, not step - 1.")
        if not close(got, want):
            raise Mismatch(f"at step 100 with d_model 512 and warmup 4000 the rate is {want:.3e}; got {got:.3e}.")

    def every_step():
        for step in steps:
            got, want = number(step), transformer_2017_lr(step, d_model, warmup)
            if not close(got, want):
                raise Mismatch(f"at step {step} the rate should be {want:.3e}, got {got:.3e}: "
                               "d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5).")

    def peak():
        got = [number(step, 64, 10) for step in range(1, 40)]
        best = max(range(len(got)), key=got.__getitem__) + 1
        if best != 10:
            raise Mismatch(f"with warmup 10 the rate should peak at step 10, yours peaks at step {best}.")

    return _run("2017 learning-rate schedule", [("while warming up", warmup_part), ("at every step", every_step),
                                                 ("peaks at warmup", peak)], verbose)
