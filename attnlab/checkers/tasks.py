"""Checkers of chapter 12: mean pooling with a mask, cosine top-k, recall@k, a confusion matrix, a parameter count,
int8 quantisation by rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from attnlab.checkers.core import (CheckResult, Mismatch, _as_array, _expect_shape, _name_the_mistake,
                                   _needs_function, _run)


def _hidden(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors (2, 5, 4) and a mask (2, 5) whose second row has two pads at the end."""
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 5, 4, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return hidden, mask


def _reference_pool(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def check_sentence_embedding(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(hidden, mask)`` → (B, C): the mean over the real tokens, scaled to length 1."""
    _needs_function(fn)
    hidden, mask = _hidden()

    def value():
        got = _as_array(fn(hidden.clone(), mask.clone()), "The sentence vectors")
        if got.shape == tuple(hidden.shape):
            raise Mismatch("one vector per sentence, (B, C): average over the tokens (dim=1).")
        _expect_shape(got, (2, 4), "The sentence vectors (B, C)")
        want = _reference_pool(hidden, mask)
        if np.allclose(got, want, atol=1e-5):
            return
        plain_mean = torch.nn.functional.normalize(hidden.mean(1), dim=-1).numpy()
        pads = 1 - mask.unsqueeze(-1).float()                       # the inverted mask: 1 on the pads
        inverted = torch.nn.functional.normalize((hidden * pads).sum(1) / pads.sum(1), dim=-1).numpy()
        if np.allclose(got[1], inverted[1], atol=1e-5) or np.allclose(got[1], ((hidden * pads).sum(1) /
                                                                            pads.sum(1))[1].numpy(), atol=1e-5):
            raise Mismatch("your mask is inverted: you averaged the PADS. In attention_mask 1 = real token and "
                           "0 = pad, so multiply by the mask itself, not by 1 - mask.")
        unnormalised = ((hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)).numpy()
        wrongs = {
            "you took the first token's vector ([CLS]) only: MiniLM's sentence vector is the MEAN over the real "
            "tokens.": torch.nn.functional.normalize(hidden[:, 0], dim=-1).numpy(),
            "the pads are included in your mean: multiply by the mask and divide by the number of REAL tokens "
            "(mask.sum(dim=1)), not by T.": plain_mean,
            "the mean is right, but scale each vector to length 1 at the end (F.normalize(..., dim=-1)).": unnormalised,
        }
        _name_the_mistake(got, wrongs, atol=1e-5)
        raise Mismatch("multiply the token vectors by the mask (B, T, 1), add them up over the tokens, divide by the "
                       "number of real tokens, then normalise each row to length 1.")

    def pads_change_nothing():
        longer = torch.cat([hidden, 100 * torch.ones(2, 3, 4)], dim=1)   # three more pads, with big values
        mask_longer = torch.cat([mask, torch.zeros(2, 3, dtype=mask.dtype)], dim=1)
        got = _as_array(fn(longer, mask_longer), "The sentence vectors")
        if not np.allclose(got, _reference_pool(hidden, mask), atol=1e-5):
            raise Mismatch("adding padding changed the vectors: the pads must get weight 0 (multiply by the mask).")

    return _run("mean pooling", [("value", value), ("extra padding changes nothing", pads_change_nothing)], verbose)


def _documents(seed: int = 2) -> tuple[np.ndarray, np.ndarray]:  # seed 2: dot and cosine rank them differently
    rng = np.random.default_rng(seed)
    documents = rng.normal(size=(8, 5)) * rng.uniform(0.2, 5, size=(8, 1))   # very different lengths
    return rng.normal(size=5), documents


def check_top_k(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(query, documents, k)`` → the indices of the k documents with the highest cosine, best first."""
    _needs_function(fn)
    query, documents = _documents()
    cosine = documents @ query / (np.linalg.norm(documents, axis=1) * np.linalg.norm(query))
    want = np.argsort(-cosine)[:3]

    def value():
        got = fn(query, documents, 3)
        if got is None:
            raise Mismatch("your function returned nothing (None): return the indices.")
        if isinstance(got, tuple) and len(got) == 2:
            raise Mismatch("you returned two things (indices and scores, as attnlab.retrieval.top_k_cosine does): "
                           "return only the indices.")
        got = np.asarray(got)
        if got.dtype.kind == "f" and np.allclose(np.sort(got)[::-1], np.sort(cosine)[::-1][:len(got)]):
            raise Mismatch("return the INDICES of the best documents (np.argsort), not their scores.")
        got = got.astype(int).ravel()
        if len(got) != 3:
            raise Mismatch(f"with k=3 return exactly 3 indices, not {len(got)}: slice [:k].")
        if list(got) == list(want):
            return
        dot = np.argsort(-(documents @ query))[:3]
        if list(got) == list(dot):
            raise Mismatch("you ranked by the raw dot product: long documents win whatever their direction. Divide "
                           "by both lengths (cosine) first.")
        if list(got) == list(np.argsort(cosine)[:3]) or list(got) == list(want[::-1]):
            raise Mismatch("the order is reversed: sort by DEcreasing similarity (np.argsort(-scores)).")
        raise Mismatch("compute the cosine of the query with every document, sort from highest to lowest, keep k.")

    def every_k():
        for k in (1, 8):
            got = np.asarray(fn(query, documents, k)).astype(int).ravel()
            if list(got) != list(np.argsort(-cosine)[:k]):
                raise Mismatch(f"with k={k} the answer should be the {k} best indices; use the argument k.")

    return _run("cosine top-k", [("value", value), ("other k", every_k)], verbose)


RANKED = [[3, 1, 4, 0], [2, 0, 1, 3], [0, 2, 3, 1], [1, 3, 0, 2]]
RELEVANT = [{4, 0}, {2}, {1}, {3, 2}]


def _recall(ranked, relevant, k):
    return float(np.mean([bool(set(r[:k]) & rel) for r, rel in zip(ranked, relevant)]))


def check_recall_at_k(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(ranked, relevant, k)`` → the share of questions with a relevant document in their top k."""
    _needs_function(fn)

    def value():
        ks = (1, 2, 3, 4)
        got = []
        for k in ks:
            answer = fn([list(r) for r in RANKED], [set(r) for r in RELEVANT], k)
            if answer is None:
                raise Mismatch("your function returned nothing (None): return one number.")
            got.append(float(answer))
        want = [_recall(RANKED, RELEVANT, k) for k in ks]
        if np.allclose(got, want, atol=1e-9):
            return
        q = len(RANKED)
        wrongs = {       # each mistake's answers for k = 1..4, checked in this order (they differ from each other)
            "you added up the questions instead of taking the mean: divide by the number of questions.":
                [w * q for w in want],
            "your answer does not change with k: you looked at the top 1 only; take ranked[:k].":
                [_recall(RANKED, RELEVANT, 1)] * len(ks),
            "you looked only at the k-th item (ranked[k-1]); the top k are all of ranked[:k].":
                [np.mean([r[k - 1] in rel for r, rel in zip(RANKED, RELEVANT)]) for k in ks],
            "that is precision@k (the share of the k results that are relevant); recall@k asks whether AT LEAST "
            "ONE relevant document is in the top k, per question.":
                [np.mean([len(set(r[:k]) & rel) / k for r, rel in zip(RANKED, RELEVANT)]) for k in ks],
            "a question counts as found (1) as soon as one of its relevant documents is in the top k: use any(...), "
            "not the share of its relevant documents.":
                [np.mean([len(set(r[:k]) & rel) / len(rel) for r, rel in zip(RANKED, RELEVANT)]) for k in ks],
            "off by one: the top k are ranked[:k] (k items), not ranked[:k+1].": [_recall(RANKED, RELEVANT, k + 1) for k in ks],
            "off by one: the top k are ranked[:k] (k items), not ranked[:k-1].": [_recall(RANKED, RELEVANT, k - 1) for k in ks],
        }
        _name_the_mistake(got, wrongs, atol=1e-9)
        k = ks[int(np.argmax(~np.isclose(got, want)))]
        raise Mismatch(f"with k={k} the recall should be {want[k - 1]:.2f}, yours is {got[k - 1]:.2f}: for each "
                       "question, 1 if any of ranked[:k] is relevant, else 0; then the mean over questions.")

    return _run("recall@k", [("k from 1 to 4", value)], verbose)


def check_confusion(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(true, predicted, n_classes)`` → counts (K, K), row = true class, column = predicted."""
    _needs_function(fn)
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2, 0, 2, 2])
    want = np.zeros((3, 3), dtype=int)
    np.add.at(want, (true, predicted), 1)

    def value():
        got = _as_array(fn(true.copy(), predicted.copy(), 3), "The confusion matrix")
        _expect_shape(got, (3, 3), "The confusion matrix (K, K)")
        if np.array_equal(got, want):
            return
        if np.array_equal(got, want.T):
            raise Mismatch("the matrix is transposed: rows are the TRUE classes, columns the predicted ones "
                           "(table[true, predicted] += 1).")
        fancy = np.zeros((3, 3), dtype=int)
        fancy[true, predicted] += 1                                  # a repeated cell is counted once
        if np.array_equal(got, fancy):
            raise Mismatch("table[true, predicted] += 1 with whole arrays adds 1 only once to a cell that repeats: "
                           "use np.add.at(table, (true, predicted), 1), or a loop over the examples.")
        if got.sum() != len(true):
            raise Mismatch(f"the counts should add up to the number of examples ({len(true)}), yours to {got.sum():g}.")
        raise Mismatch("for each example add 1 at [its true class, its predicted class].")

    def rows_add_up():
        got = _as_array(fn(true.copy(), predicted.copy(), 4), "The confusion matrix")
        _expect_shape(got, (4, 4), "With n_classes=4 the matrix (4, 4)")
        if not np.array_equal(got.sum(axis=1), np.bincount(true, minlength=4)):
            raise Mismatch("each row should add up to the number of examples of that true class.")

    return _run("confusion matrix", [("value", value), ("rows add up to the class counts", rows_add_up)], verbose)


GPT2_SMALL = {"n_layer": 12, "n_embd": 768, "vocab_size": 50257, "n_positions": 1024}


def check_gpt2_parameters(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(n_layer, n_embd, vocab_size, n_positions)`` → GPT-2's exact parameter count (tied output layer)."""
    _needs_function(fn)
    from attnlab.sizes import config_of, count_from_config

    def count(n_layer, n_embd, vocab_size, n_positions):
        c = n_embd
        return n_layer * (12 * c * c + 13 * c) + vocab_size * c + n_positions * c + 2 * c

    def value():
        got = fn(**GPT2_SMALL)
        if got is None:
            raise Mismatch("your function returned nothing (None): return one whole number.")
        if float(got) != int(float(got)):
            raise Mismatch(f"a parameter count is a whole number, yours is {float(got):,.2f}: count with whole "
                           "numbers (// rather than /).")
        got = int(got)
        want = count_from_config(config_of("GPT-2 small"))
        if got == want:
            return
        c, n, v, p = 768, 12, 50257, 1024
        wrongs = {
            "you counted the output layer as well: GPT-2 reuses the token embedding there (tied), so it counts once.":
                want + v * c,
            "the position embedding (n_positions × n_embd) is missing.": want - p * c,
            "the biases are missing: every Linear layer has one (4C for Q, K, V and the output, 4C + C in the "
            "feed-forward).": want - n * (4 * c + 5 * c),
            "the LayerNorms are missing: two per layer and one at the end, each with a weight and a bias (2C).":
                want - (2 * n + 1) * 2 * c,
            "each LayerNorm has a bias as well as a weight: 2C per LayerNorm, not C.": want - (2 * n + 1) * c,
            "the final LayerNorm (after the last layer, 2C) is missing.": want - 2 * c,
            "that is the rule of thumb 12·L·C² + V·C; the exact count adds positions, biases and LayerNorms.":
                12 * n * c * c + v * c,
        }
        for hint, wrong in wrongs.items():
            if got == wrong:
                raise Mismatch(hint)
        raise Mismatch(f"GPT-2 small has {want:,} parameters; yours gives {got:,}. Per layer: 4C² + 4C (attention), "
                       "8C² + 5C (feed-forward, width 4C), 4C (two LayerNorms); plus V·C + P·C + 2C.")

    def other_sizes():
        for n_layer, n_embd in ((2, 64), (48, 1600)):
            values = {**GPT2_SMALL, "n_layer": n_layer, "n_embd": n_embd}
            if int(fn(**values)) != count(**values):
                raise Mismatch(f"right for GPT-2 small but not for {n_layer} layers of width {n_embd}: use the "
                               "arguments, not fixed numbers.")

    return _run("GPT-2 parameter count", [("GPT-2 small", value), ("other sizes", other_sizes)], verbose)


def check_int8_rows(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(weight)`` → (q, scale): per-row absmax int8, q in [-127, 127], weight ≈ q · scale."""
    _needs_function(fn)
    from attnlab.sizes import int8_rows

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 10, generator=generator) * torch.tensor([0.01, 0.1, 1, 3, 10, 0.5])[:, None]
    weight[2, 3] = -4.0                                   # a row whose largest magnitude is negative
    want_q, want_scale = int8_rows(weight)

    def value():
        got = fn(weight.clone())
        if not isinstance(got, tuple) or len(got) != 2:
            raise Mismatch("return two things: the integers q (R, C) and the scales (R, 1).")
        q, scale = (torch.as_tensor(x) for x in got)
        if q.dtype != torch.int8:
            raise Mismatch(f"q should be stored as torch.int8 (1 byte each), not {q.dtype}: .to(torch.int8).")
        if scale.numel() == 1:
            raise Mismatch("one scale for the whole matrix lets the largest row decide for all: use one scale per "
                           "ROW, amax(dim=-1, keepdim=True), shape (R, 1).")
        if tuple(scale.shape) != (6, 1):
            raise Mismatch(f"scale should have shape (R, 1) = (6, 1), not {tuple(scale.shape)}: keepdim=True.")
        if torch.allclose(scale.float(), want_scale * 127 / 255) or torch.allclose(scale.float(), want_scale * 127):
            raise Mismatch("the scale maps the row's largest |value| to 127: scale = absmax / 127.")
        if not torch.allclose(scale.float(), want_scale, rtol=1e-5):
            if torch.allclose(scale.float(), weight.amax(dim=-1, keepdim=True) / 127):
                raise Mismatch("use the largest ABSOLUTE value of each row (.abs().amax(...)): a row's biggest "
                               "number may be negative.")
            raise Mismatch("scale should be each row's largest absolute value divided by 127.")
        if torch.equal(q, want_q):
            return
        if torch.equal(q, (weight / want_scale).clamp(-127, 127).to(torch.int8)):
            raise Mismatch("round before casting: .to(torch.int8) cuts the fractions off (towards 0); "
                           "torch.round(weight / scale) first.")
        raise Mismatch("q = round(weight / scale), clamped to [-127, 127], stored as int8.")

    def error_bound():
        q, scale = fn(weight.clone())
        error = ((weight - torch.as_tensor(q).float() * torch.as_tensor(scale).float()).abs() / want_scale).max()
        if error > 0.5 + 1e-5:
            raise Mismatch(f"q · scale should be within half a step of the weight; the worst is {float(error):.2f} "
                           "steps away.")

    return _run("int8 per-row quantisation", [("value", value), ("within half a step", error_bound)], verbose)
