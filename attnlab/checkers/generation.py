"""Checkers of chapter 9: sampling probabilities (temperature, top-k) and a generation loop."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attnlab.checkers.core import NOTHING_RETURNED, CheckResult, Mismatch, _as_array, _expect_shape, _needs_function, _run


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def reference_probabilities(logits: np.ndarray, temperature: float, top_k: int | None = None) -> np.ndarray:
    """softmax(logits / temperature) over the ``top_k`` largest logits (greedy one-hot at temperature 0)."""
    logits = np.asarray(logits, dtype=float)
    if temperature == 0:
        return np.eye(logits.shape[-1])[logits.argmax(axis=-1)]
    z = logits / temperature
    if top_k is not None:
        kth = np.sort(z, axis=-1)[..., -top_k][..., None]
        z = np.where(z < kth, -np.inf, z)
    return _softmax(z)


# ---------------------------------------------------------------- chapter 9: sampling and generating


def check_sampling(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(logits, temperature, top_k=None)`` → probabilities (B, vocab): softmax(logits / temperature)
    over the top_k largest logits, renormalised; temperature 0 means greedy (all the probability on the argmax)."""
    _needs_function(fn)
    import torch

    rng = np.random.default_rng(9)
    logits = rng.normal(scale=2.0, size=(3, 12))  # (B, vocab), distinct values

    def call(temperature, top_k=None):
        got = fn(torch.tensor(logits, dtype=torch.float32), temperature, top_k)
        if got is None:
            raise Mismatch(NOTHING_RETURNED)
        got = _as_array(got, "The probabilities")
        _expect_shape(got, logits.shape, "The probabilities (B, vocab)")
        return got

    def plain():
        got = call(1.0)
        if np.allclose(got, logits, atol=1e-4):
            raise Mismatch("you returned the logits: apply the softmax along the vocabulary (the last axis).")
        if np.allclose(got.sum(axis=0), 1, atol=1e-4) and not np.allclose(got.sum(axis=-1), 1, atol=1e-4):
            raise Mismatch("the softmax runs over the batch: take it along the last axis, dim=-1.")
        if not np.allclose(got, reference_probabilities(logits, 1.0), atol=1e-5):
            raise Mismatch("at temperature 1 the result should be softmax(logits, dim=-1).")

    def temperature():
        for t in (0.5, 2.0):
            got = call(t)
            if np.allclose(got, _softmax(logits) / t, atol=1e-5) or np.allclose(got, _softmax(logits), atol=1e-5):
                raise Mismatch("divide the LOGITS by the temperature, before the softmax: softmax(logits / T). "
                               "Dividing the probabilities after the softmax changes nothing but their sum.")
            if np.allclose(got, _softmax(logits * t), atol=1e-5):
                raise Mismatch("you multiplied by the temperature: divide, softmax(logits / T), so that a low "
                               "temperature sharpens and a high one flattens.")
            if not np.allclose(got.sum(-1), 1, atol=1e-4):
                raise Mismatch("each row must sum to 1: take the softmax after dividing by the temperature.")
            if not np.allclose(got, reference_probabilities(logits, t), atol=1e-5):
                raise Mismatch(f"at temperature {t} the result should be softmax(logits / {t}).")

    def top_k():
        for k in (1, 3, 5):
            got = call(1.0, k)
            kept = (got > 1e-9).sum(axis=-1)
            if (kept == k - 1).all():
                raise Mismatch(f"top_k={k} kept only {k - 1} characters: keep every logit >= the k-th largest "
                               "(torch.topk(logits, k).values[..., -1:]), not only those strictly greater.")
            if (kept == k + 1).all():
                raise Mismatch(f"top_k={k} kept {k + 1} characters: the k-th largest is values[..., -1] of "
                               "torch.topk(logits, k) (index k - 1 when counting from 0), not index k.")
            if (kept == got.shape[-1]).all():
                raise Mismatch(f"top_k={k} kept every character: set the logits below the k-th largest to "
                               "-inf before the softmax.")
            if not (kept == k).all():
                raise Mismatch(f"top_k={k} should leave exactly {k} non-zero probabilities per row; yours has "
                               f"{kept.tolist()}.")
            if not np.allclose(got.sum(-1), 1, atol=1e-4):
                raise Mismatch("the kept probabilities do not sum to 1: renormalise them (set the dropped "
                               "LOGITS to -inf and take the softmax afterwards, or divide by the new sum).")
            if not np.allclose(got, reference_probabilities(logits, 1.0, k), atol=1e-5):
                raise Mismatch(f"top_k={k} should keep the {k} largest logits, with the softmax's proportions.")
        got = call(0.5, 4)
        if not np.allclose(got, reference_probabilities(logits, 0.5, 4), atol=1e-5):
            raise Mismatch("temperature and top_k together: divide by the temperature, keep the top k, softmax.")

    def greedy():
        try:
            got = call(0.0)
        except ZeroDivisionError:
            raise Mismatch("temperature 0 divides by zero: treat it as greedy, all the probability on the "
                           "largest logit (e.g. F.one_hot(logits.argmax(-1), vocab).float()).") from None
        if np.isnan(got).any() or np.isinf(got).any():
            raise Mismatch("temperature 0 gives NaN or inf (logits / 0): treat it as greedy, probability 1 on "
                           "the largest logit and 0 elsewhere.")
        if not np.allclose(got, reference_probabilities(logits, 0.0), atol=1e-6):
            raise Mismatch("at temperature 0 every row should be one-hot on its largest logit (greedy).")

    return _run("sampling probabilities", [("plain softmax", plain), ("temperature", temperature),
                                           ("top-k", top_k), ("temperature 0 (greedy)", greedy)], verbose)


def _tiny_gpt():
    import torch

    from attnlab.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():  # larger weights than at initialisation: logits that differ from one context to another
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.mul_(3)
    seen = []  # every context the model is given, (B, T) each
    model.seen = seen
    original = model.forward

    def forward(idx, *args, **kwargs):
        seen.append(idx.detach().clone())
        return original(idx, *args, **kwargs)

    model.forward = forward
    return model


def _greedy_reference(model, idx, steps: int):
    import torch

    with torch.no_grad():
        for _ in range(steps):
            logits = model(idx[:, -model.config.block_size:]).logits[:, -1]
            idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    return idx


def check_generation(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None)`` → (B, T + new) ids:
    a generation loop that crops the context to ``block_size``, reads the last position's logits and samples."""
    _needs_function(fn)
    import torch

    model = _tiny_gpt()
    block = model.config.block_size

    def call(idx, steps, **options):
        got = fn(model, idx, steps, **options)
        if got is None:
            raise Mismatch(NOTHING_RETURNED)
        if not isinstance(got, torch.Tensor):
            raise Mismatch(f"return the ids as a tensor (B, T + max_new_tokens), not {type(got).__name__}.")
        return got

    def shape():
        idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
        got = call(idx, 4, temperature=0.0)
        if got.shape == (2, 4):
            raise Mismatch("return the prompt AND the new tokens, torch.cat([idx, next_id], dim=1) at each step.")
        if tuple(got.shape) != (2, 7):
            raise Mismatch(f"the result should have shape (2, 3 + 4) = (2, 7), got {tuple(got.shape)}.")
        if not torch.equal(got[:, :3], idx):
            raise Mismatch("the result should start with the prompt itself, unchanged.")

    def greedy():
        idx = torch.tensor([[1, 2, 3]])
        got = call(idx, 4, temperature=0.0)
        want = _greedy_reference(model, idx, 4)
        if not torch.equal(got, want):
            with torch.no_grad():
                first_position = model(idx).logits[:, 0].argmax(-1)
            if got[0, 3] == first_position[0] and want[0, 3] != first_position[0]:
                raise Mismatch("you predicted from the FIRST position: the next token comes from the last "
                               "position's logits, logits[:, -1, :].")
            raise Mismatch("at temperature 0 (greedy) each new token should be the argmax of the last position's "
                           "logits, given everything written so far.")

    def long_context():
        idx = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
        model.seen.clear()
        try:
            got = call(idx, 6, temperature=0.0)
        except Exception as error:  # the GPT refuses inputs longer than block_size
            if "block_size" in str(error) or "longer" in str(error):
                raise Mismatch(f"the model reads at most block_size = {block} tokens: give it only the last "
                               "ones, idx[:, -model.config.block_size:], at every step.") from None
            raise
        last_context = model.seen[-1]
        if last_context.size(1) == block and not torch.equal(last_context, got[:, -block - 1:-1]):
            raise Mismatch("past block_size tokens, crop the context to the LAST block_size tokens "
                           "(idx[:, -block_size:]), not the first ones: the newest tokens matter most.")
        if not torch.equal(got, _greedy_reference(model, idx, 6)):
            raise Mismatch("past block_size tokens, crop the context to the LAST block_size tokens "
                           "(idx[:, -block_size:]), not the first ones.")

    def sampling():
        idx = torch.tensor([[1, 2, 3]]).repeat(4000, 1)
        got = call(idx, 1, temperature=1.0, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            want = torch.softmax(model(idx[:1]).logits[0, -1], dim=-1).numpy()
        counts = np.bincount(got[:, -1].numpy(), minlength=len(want)) / len(got)
        if counts.max() > 0.999 and want.max() < 0.98:
            raise Mismatch("at temperature 1 every row chose the same token: sample from the probabilities "
                           "(torch.multinomial(probs, 1, generator=generator)) instead of taking the argmax.")
        if np.abs(counts - want).max() > 0.04:
            raise Mismatch("the sampled tokens do not follow the model's probabilities: draw each new token with "
                           "torch.multinomial(probs, num_samples=1), probs (B, vocab) from the last position.")

    return _run("generation loop", [("shape", shape), ("greedy, last position", greedy),
                                    ("a context longer than block_size", long_context),
                                    ("sampling follows the probabilities", sampling)], verbose)
