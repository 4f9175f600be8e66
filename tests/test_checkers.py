"""The exercise checkers accept correct work and name the typical mistakes."""

import numpy as np
import pytest

from attnlab import checkers


def good_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def good_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = good_softmax(scores)
    return weights @ v, weights


def _verdict(check, fn):
    result = check(fn, verbose=False)
    return result.passed, result.failed_case, result.hint


def test_correct_implementations_pass(capsys):
    heads = lambda x, wq, wk, wv, wo, h: checkers.multi_head_attention_np(x, wq, wk, wv, wo, h)  # noqa: E731
    for check, fn in [
        (checkers.check_softmax, good_softmax),
        (checkers.check_attention, good_attention),
        (checkers.check_causal_mask, lambda n: np.tril(np.ones((n, n), dtype=bool))),
        (checkers.check_multi_head, heads),
        (checkers.check_positional_encoding, checkers.sinusoidal_encoding),
    ]:
        result = check(fn)
        assert result and result.failed_case is None, result.message()
    printed = capsys.readouterr().out
    assert printed.count("✓") == 5 and "Traceback" not in printed


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True), "Subtract each row's max"),
    (lambda x: np.exp(x) / np.exp(x).sum(axis=0, keepdims=True), "ROW"),
    (lambda x: x / x.sum(axis=-1, keepdims=True), "take exp() first"),
    (lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum(), "sum to 1"),
])
def test_softmax_mistakes_are_named(wrong, hint):
    passed, _, message = _verdict(checkers.check_softmax, wrong)
    assert not passed and hint in message


def unscaled(q, k, v, mask=None):
    weights = good_softmax(q @ np.swapaxes(k, -1, -2))
    return weights @ v, weights


def wrong_axis(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(scores - scores.max(axis=-2, keepdims=True))
    weights = e / e.sum(axis=-2, keepdims=True)
    return weights @ v, weights


def mask_after_softmax(q, k, v, mask=None):
    _, weights = good_attention(q, k, v)
    if mask is not None:
        weights = np.where(mask, weights, 0.0)
    return weights @ v, weights


def unstable(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores)
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ v, weights


def transposes_whole_k(q, k, v, mask=None):
    scores = q @ k.T / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = good_softmax(scores)
    return weights @ v, weights


@pytest.mark.parametrize("wrong, case, hint", [
    (unscaled, "scaled by √d_k", "divide the scores by √d_k"),
    (wrong_axis, "rows sum to 1", "over the keys"),
    (mask_after_softmax, "masking", "applied after the softmax"),
    (unstable, "large inputs", "stable softmax"),
    (transposes_whole_k, "batched inputs", "swapaxes"),
    (lambda q, k, v, mask=None: good_attention(q, k, v, mask)[0], "shapes", "(output, weights)"),
])
def test_attention_mistakes_are_named(wrong, case, hint):
    passed, failed_case, message = _verdict(checkers.check_attention, wrong)
    assert not passed and failed_case == case and hint in message, (failed_case, message)


@pytest.mark.parametrize("wrong, hint", [
    (lambda n: np.triu(np.ones((n, n), dtype=bool)), "FUTURE"),
    (lambda n: ~np.tril(np.ones((n, n), dtype=bool)), "inverted"),
    (lambda n: np.tril(np.ones((n, n), dtype=bool), k=-1), "attend to itself"),
])
def test_causal_mask_mistakes_are_named(wrong, hint):
    passed, _, message = _verdict(checkers.check_causal_mask, wrong)
    assert not passed and hint in message


def _heads(merge_badly=False, skip_output=False, single_head=False):
    def fn(x, w_q, w_k, w_v, w_o, n_heads):
        n_heads = 1 if single_head else n_heads
        length, d = x.shape
        split = lambda m: m.reshape(length, n_heads, d // n_heads).transpose(1, 0, 2)  # noqa: E731
        out, _ = good_attention(split(x @ w_q), split(x @ w_k), split(x @ w_v))
        merged = out.reshape(length, d) if merge_badly else out.transpose(1, 0, 2).reshape(length, d)
        return merged if skip_output else merged @ w_o
    return fn


@pytest.mark.parametrize("wrong, hint", [
    (_heads(merge_badly=True), "merged in the wrong order"),
    (_heads(skip_output=True), "output projection is missing"),
    (_heads(single_head=True), "single-head"),
])
def test_multi_head_mistakes_are_named(wrong, hint):
    passed, _, message = _verdict(checkers.check_multi_head, wrong)
    assert not passed and hint in message, message


def test_positional_encoding_mistakes_are_named():
    def swapped(n, d):
        table = checkers.sinusoidal_encoding(n, d)
        table[:, 0::2], table[:, 1::2] = table[:, 1::2].copy(), table[:, 0::2].copy()
        return table

    def wrong_frequencies(n, d):
        pos, i = np.arange(n)[:, None], np.arange(d // 2)[None, :]
        table = np.zeros((n, d))
        table[:, 0::2], table[:, 1::2] = np.sin(pos / 10000 ** (i / d)), np.cos(pos / 10000 ** (i / d))
        return table

    assert "swapped" in _verdict(checkers.check_positional_encoding, swapped)[2]
    assert "frequencies" in _verdict(checkers.check_positional_encoding, wrong_frequencies)[2]


def test_a_crashing_function_gets_a_message_not_a_traceback(capsys):
    def crashes(x):
        raise KeyError("oops")

    result = checkers.check_softmax(crashes)
    out = capsys.readouterr().out
    assert not result and "raised KeyError" in result.hint
    assert "Traceback" not in out and "Hint:" in out


def test_result_renders_as_html_in_notebooks():
    result = checkers.check_softmax(lambda x: x, verbose=False)
    assert result._repr_html_().startswith("<div") and "✗" in result._repr_html_()
