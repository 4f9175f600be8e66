import numpy as np
import pytest

from attnlab.attention import rows_sum_to_one, self_attention_weights, softmax
from attnlab.toy import TOKENS, VECTORS, toy_attention


def test_softmax_rows_are_distributions():
    weights = softmax(np.random.default_rng(0).normal(size=(5, 7)))
    assert rows_sum_to_one(weights)


def test_softmax_is_stable_for_huge_scores():
    weights = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights, [[0.5, 0.5, 0.0]], atol=1e-12)


def test_temperature_sharpens_and_flattens():
    scores = np.array([1.0, 2.0, 3.0])
    cold, warm, hot = (softmax(scores, temperature=t) for t in (0.1, 1.0, 10.0))
    assert cold.max() > warm.max() > hot.max()
    assert np.argmax(cold) == np.argmax(warm) == np.argmax(hot) == 2
    with pytest.raises(ValueError):
        softmax(scores, temperature=0)


def test_toy_attention_is_the_formula():
    scores = VECTORS @ VECTORS.T / 2.0  # √d with d = 4
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(toy_attention(), expected)
    np.testing.assert_allclose(self_attention_weights(VECTORS), expected)
    assert toy_attention().shape == (len(TOKENS), len(TOKENS))


def test_rows_sum_to_one_rejects_non_distributions():
    assert not rows_sum_to_one(np.array([[0.5, 0.6]]))
    assert not rows_sum_to_one(np.array([[1.5, -0.5]]))
