"""Checkers of chapter 10: a head-pattern score of your own (punctuation), and attention rollout."""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np

from attnlab.checkers.core import (CheckResult, Mismatch, _as_array, _expect_shape, _name_the_mistake,
                                   _needs_function, _run)

TOKENS = ["[CLS]", "well", ",", "it", "'", "s", "fine", "...", "[SEP]"]  # punctuation: ",", "'", "..."


def is_punctuation(token: str) -> bool:
    """A token with no letter or digit in it ([CLS] and [SEP] have letters, so they are not punctuation)."""
    return not any(c.isalnum() for c in token.lstrip("Ġ▁"))  # GPT-2 / RoBERTa mark a leading space with "Ġ"


def _maps(seed: int, layers: int = 2, heads: int = 3, length: int = len(TOKENS)) -> np.ndarray:
    """Random attention maps (layers, heads, T, T) whose rows sum to 1."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(length, 0.5), size=(layers, heads, length))


def reference_punctuation(attentions: np.ndarray, tokens: list[str]) -> np.ndarray:
    """Per head, the weight a query puts on punctuation keys, averaged over every query: (L, H)."""
    keys = np.array([is_punctuation(t) for t in tokens])
    return attentions[..., keys].sum(axis=-1).mean(axis=-1)


def check_punctuation_score(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(attentions, tokens)`` → (layers, heads): each head's mean weight on punctuation keys."""
    _needs_function(fn)
    maps = _maps(0)
    keys = np.array([is_punctuation(t) for t in TOKENS])

    def call(attentions, tokens):
        got = _as_array(fn(attentions, list(tokens)), "The scores")
        _expect_shape(got, attentions.shape[:2], "The scores (layers, heads)")
        return got

    def shape():
        got = _as_array(fn(maps, list(TOKENS)), "The scores")
        if got.shape == maps.shape[:3]:
            raise Mismatch("one score per head, not per query: average over the queries as well (axis=-1 after "
                           "summing the punctuation keys).")
        if got.shape == (len(TOKENS),):
            raise Mismatch("one score per layer AND head, shape (layers, heads): keep the first two axes.")
        _expect_shape(got, maps.shape[:2], "The scores (layers, heads)")

    def value():
        got = call(maps, TOKENS)
        want = reference_punctuation(maps, TOKENS)
        if np.allclose(got, want, atol=1e-6):
            return
        wrongs = {
            "you summed over the QUERIES (the rows): the punctuation tokens are the keys, the last axis "
            "(attentions[..., is_punct].sum(axis=-1)).": maps[..., keys, :].sum(axis=-2).mean(axis=-1),
            "you took the rows OF the punctuation tokens (punctuation as queries); the score is the weight every "
            "query puts ON punctuation keys: attentions[..., is_punct].": maps[..., keys, :].sum(axis=-1).mean(axis=-1),
            "add up the weights on the punctuation keys for each query, then AVERAGE over the queries (.mean(-1)), "
            "not add them up: a score is at most 1.": maps[..., keys].sum(axis=-1).sum(axis=-1),
            "a query's weight on punctuation is the SUM over the punctuation keys, not their mean: three commas "
            "getting 0.2 each is 0.6.": maps[..., keys].mean(axis=-1).mean(axis=-1),
            "[CLS] and [SEP] are not punctuation (they have letters): a token counts when it has no letter or digit, "
            "not any(c.isalnum() for c in token).": reference_punctuation(
                maps, [t if not t.startswith("[") else "," for t in TOKENS]),
            "\"'\" and \"...\" are punctuation too: count every token with no letter or digit "
            "(not any(c.isalnum() for c in token)), not only a fixed list such as \",.!?\".":
                maps[..., [2]].sum(-1).mean(-1),
            "\"...\" is punctuation too, but `token in string.punctuation` only matches single characters: test "
            "the characters instead, not any(c.isalnum() for c in token).":
                maps[..., [t in string.punctuation for t in TOKENS]].sum(-1).mean(-1),
        }
        _name_the_mistake(got, wrongs, atol=1e-6)
        raise Mismatch("for each layer and head, add the weights on the punctuation keys in each query's row, then "
                       "average over all the queries.")

    def no_punctuation():
        tokens = ["[CLS]", "hello", "there", "[SEP]"]
        got = call(_maps(1, length=4), tokens)
        if np.isnan(got).any():
            raise Mismatch("a sentence without punctuation gives NaN: its score should be 0 (a sum over no keys).")
        if not np.allclose(got, 0):
            raise Mismatch("with no punctuation token in the sentence every score should be 0.")

    def one_hot():
        maps_on_comma = np.zeros((1, 2, len(TOKENS), len(TOKENS)))
        maps_on_comma[0, 0, :, 2] = 1.0  # head 0 puts everything on ","
        maps_on_comma[0, 1, :, 0] = 1.0  # head 1 on [CLS]
        got = call(maps_on_comma, TOKENS)
        if not np.allclose(got, [[1.0, 0.0]]):
            raise Mismatch(f"a head that puts all weight on ',' should score 1 and one on [CLS] 0; yours gave "
                           f"{np.round(got, 3).tolist()}.")

    return _run("punctuation score", [("shape", shape), ("value on random maps", value),
                                      ("a sentence with no punctuation", no_punctuation),
                                      ("heads that look at one token", one_hot)], verbose)


def check_rollout(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(attentions, residual=0.5)`` → (T, T): attention rollout with the residual identity term."""
    _needs_function(fn)
    from attnlab.attribution import rollout as reference

    maps = _maps(2, layers=3, heads=4, length=5)
    length = maps.shape[-1]

    def call(attentions, residual):
        got = _as_array(fn(attentions, residual), "The rollout")
        if got.shape == attentions.shape[:1] + (length, length):
            raise Mismatch("return one (T, T) matrix, the product over the layers, not one per layer.")
        _expect_shape(got, (length, length), "The rollout (T, T)")
        return got

    def rows():
        got = call(maps, 0.5)
        sums = got.sum(axis=-1)
        if np.allclose(sums, 2.0 ** maps.shape[0]):
            raise Mismatch("the rows sum to 2^layers: after adding the identity, divide each row by its sum "
                           "(or take 0.5·A + 0.5·I), so that every layer's rows sum to 1.")
        mixed = 0.5 * maps.mean(axis=1) + 0.5 * np.eye(length)
        if np.allclose(got, np.prod(mixed, axis=0), atol=1e-6):
            raise Mismatch("multiply the layers as MATRICES (@), not element by element (*).")
        if not np.allclose(sums, 1, atol=1e-6):
            raise Mismatch(f"every row of the rollout should sum to 1; yours sum to {np.round(sums, 3).tolist()}.")

    def value():
        got = call(maps, 0.5)
        want = reference(maps, 0.5)
        if np.allclose(got, want, atol=1e-6):
            return
        mean = maps.mean(axis=1)
        mixed = 0.5 * mean + 0.5 * np.eye(length)
        wrongs = {
            "the order is reversed: a later layer acts on the result of the earlier ones, so it multiplies from the "
            "LEFT: result = layer @ result, starting with the first layer.":
                np.linalg.multi_dot(list(mixed)) if len(mixed) > 1 else mixed[0],
            "you left out the residual connection: add the identity, 0.5·A + 0.5·I (with residual=0.5), before "
            "multiplying the layers.": np.linalg.multi_dot(list(mean[::-1])),
            "multiply the layers as MATRICES (@), not element by element (*).": np.prod(mixed, axis=0),
            "average the heads of each layer (mean over axis 1), not their maximum.":
                _chain(np.max(maps, axis=1), 0.5, normalise=True),
            "every layer counts: multiply all of them, not only the last one.": mixed[-1],
        }
        _name_the_mistake(got, wrongs, atol=1e-6)
        raise Mismatch("average the heads of each layer, mix with the identity (residual·I + (1 − residual)·A), "
                       "renormalise the rows, then multiply the layers: result = layer @ result, first layer first.")

    def residual():
        for share in (0.0, 0.9):
            got = call(maps, share)
            if not np.allclose(got, reference(maps, share), atol=1e-6):
                raise Mismatch(f"with residual={share} the result differs: use the argument (residual·I + "
                               "(1 − residual)·A), not a fixed 0.5.")

    def identity():
        eye = np.broadcast_to(np.eye(length), maps.shape).copy()
        got = call(eye, 0.5)
        if not np.allclose(got, np.eye(length), atol=1e-6):
            raise Mismatch("if every head attends only to itself, nothing mixes: the rollout should be the identity.")

    return _run("attention rollout", [("rows sum to 1", rows), ("value", value), ("the residual argument", residual),
                                      ("heads that attend to themselves", identity)], verbose)


def _chain(layers: np.ndarray, residual: float, normalise: bool) -> np.ndarray:
    """The rollout product of per-layer (T, T) matrices, mixed with the identity."""
    result = np.eye(layers.shape[-1])
    for layer in layers:
        mixed = residual * np.eye(layers.shape[-1]) + (1 - residual) * layer
        if normalise:
            mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result
    return result
