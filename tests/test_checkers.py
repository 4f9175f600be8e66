"""The exercise checkers accept correct work and name the typical mistakes."""

import numpy as np
import pytest

from attnlab import checkers
from attnlab.workshop import mistakes
from attnlab.workshop.mistakes import MISTAKES


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


# The wrong answers live in the instructors' catalog (attnlab.workshop.mistakes), one source for both.
def _named(checker, hints):
    """The catalog's mistakes for ``checker`` beside the words each diagnosis must contain, in catalog order."""
    assert len(MISTAKES[checker]) == len(hints), f"one expected hint per catalogued mistake of {checker}"
    return [pytest.param(mistake.answer, *hint if isinstance(hint, tuple) else (hint,), id=mistake.what)
            for mistake, hint in zip(MISTAKES[checker], hints)]


@pytest.mark.parametrize("wrong, hint", _named("check_softmax", [
    "Subtract each row's max", "ROW", "take exp() first", "sum to 1",
    "Write keepdims=True in both", "Write keepdims=True in both", "Subtract each row's max (axis=-1, keepdims=True)"]))
def test_softmax_mistakes_are_named(wrong, hint):
    passed, _, message = _verdict(checkers.check_softmax, wrong)
    assert not passed and hint in message


@pytest.mark.parametrize("wrong, case, hint", _named("check_attention", [
    ("scaled by √d_k", "divide the scores by √d_k"),
    ("rows sum to 1", "over the keys"),
    ("masking", "applied after the softmax"),
    ("large inputs", "stable softmax"),
    ("batched inputs", "swapaxes"),
    ("shapes", "(output, weights)"),
    ("scaled by √d_k", "divided by d_k (8), not by its square root"),
    ("scaled by √d_k", "divided by √d_v, the width of v (3)"),
    ("masking", "your mask is inverted"),
    ("masking", "mask * scores sets the blocked scores to 0"),
]))
def test_attention_mistakes_are_named(wrong, case, hint):
    passed, failed_case, message = _verdict(checkers.check_attention, wrong)
    assert not passed and failed_case == case and hint in message, (failed_case, message)


@pytest.mark.parametrize("wrong, hint", _named("check_causal_mask", ["FUTURE", "inverted", "attend to itself"]))
def test_causal_mask_mistakes_are_named(wrong, hint):
    passed, _, message = _verdict(checkers.check_causal_mask, wrong)
    assert not passed and hint in message


@pytest.mark.parametrize("wrong, hint", _named("check_multi_head", [
    "merged in the wrong order", "output projection is missing", "single-head"]))
def test_multi_head_mistakes_are_named(wrong, hint):
    passed, _, message = _verdict(checkers.check_multi_head, wrong)
    assert not passed and hint in message, message


def test_positional_encoding_mistakes_are_named():
    assert "swapped" in _verdict(checkers.check_positional_encoding, mistakes.sin_cos_swapped)[2]
    assert "frequencies" in _verdict(checkers.check_positional_encoding, mistakes.frequencies_over_i)[2]
    assert "position 0 should be" in _verdict(checkers.check_positional_encoding, mistakes.positions_from_one)[2]
    assert "all the sines first" in _verdict(checkers.check_positional_encoding, mistakes.sines_then_cosines)[2]


def test_the_course_interleaves_sines_and_cosines():
    """The concatenation hint says the course interleaves: true of attnlab.positional, which chapter 3 uses."""
    table = checkers.sinusoidal_encoding(6, 8)
    angles = np.arange(6)[:, None] / 10000 ** (np.arange(0, 8, 2)[None, :] / 8)
    assert np.allclose(table[:, 0::2], np.sin(angles)) and np.allclose(table[:, 1::2], np.cos(angles))
    assert not np.allclose(table, mistakes.sines_then_cosines(6, 8))


def test_a_forgotten_keepdims_is_named_not_a_numpy_error():
    def attention_without_keepdims(q, k, v, mask=None):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = e / e.sum(axis=-1)
        return weights @ v, weights

    passed, case, hint = _verdict(checkers.check_softmax, mistakes.softmax_sum_no_keepdims)
    assert (passed, case) == (False, "shape is kept") and "raised" not in hint
    assert "(3, 5) with (3,)" in hint and "keepdims=True" in hint and "shape (3, 1)" in hint
    passed, case, hint = _verdict(checkers.check_attention, attention_without_keepdims)
    assert (passed, case) == (False, "shapes") and "(4, 6) with (4,)" in hint and "keepdims=True" in hint
    # Another broadcasting error is not blamed on keepdims: NumPy's own words are shown.
    hint = _verdict(checkers.check_softmax, lambda x: x + np.ones(7))[2]
    assert hint.startswith("your function raised ValueError") and "keepdims" not in hint


def test_the_global_max_hint_tells_it_from_no_max_at_all():
    assert "not the matrix's" in _verdict(checkers.check_softmax, mistakes.softmax_global_max)[2]
    no_max = _verdict(checkers.check_softmax, lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True))[2]
    assert "exp(1000) overflows" in no_max and "matrix's" not in no_max


def test_the_warmup_power_hint_is_true():
    """With warmup ** -0.5 the schedule peaks near warmup^(1/3), as the hint says; with ** -1.5 at warmup."""
    hint = _verdict(checkers.check_transformer_lr, lambda s, d, w: d ** -0.5 * min(s ** -0.5, s * w ** -0.5))[2]
    assert "meet at step warmup^(1/3) ≈ 16, not at step = warmup = 4000" in hint and "warmup ** -1.5" in hint
    steps = np.arange(1, 10_001)
    for power, peak in ((-0.5, 16), (-1.5, 4000)):
        rates = [512 ** -0.5 * min(s ** -0.5, s * 4000 ** power) for s in steps]
        assert steps[int(np.argmax(rates))] == peak
    # Another power (or no warmup term at all) gets the general hint, without the number for -0.5.
    hint = _verdict(checkers.check_transformer_lr, lambda s, d, w: d ** -0.5 * s ** -0.5)[2]
    assert "smaller term of min() until step = warmup" in hint and "≈ 16" not in hint


def test_a_shape_hint_says_whose_shape():
    hint = _verdict(checkers.check_rnn_forward, mistakes.rnn_last_state_only)[2]
    assert hint.endswith("should have shape (5, 4), but yours has shape (4,).")


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
