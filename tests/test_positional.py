import math

import numpy as np
import pytest
import torch

from attnlab.attention import scaled_dot_product_attention
from attnlab.positional import (
    LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding,
)


def test_sinusoidal_matches_the_formula_element_wise():
    table = sinusoidal_encoding(20, 8)
    for pos in range(20):
        for i in range(4):
            angle = pos / 10000 ** (2 * i / 8)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)


def test_every_position_is_unique():
    table = sinusoidal_encoding(512, 64)
    distances = np.linalg.norm(table[:, None] - table[None], axis=-1)
    assert np.all(distances[~np.eye(512, dtype=bool)] > 1e-3)


def test_similarity_falls_with_distance():
    table = sinusoidal_encoding(256, 64)
    similarity = table @ table.T
    mean_at = [np.mean(np.diagonal(similarity, offset=k)) for k in (0, 1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(mean_at, mean_at[1:])), mean_at


def test_sinusoidal_module_adds_the_table():
    module = SinusoidalPositionalEncoding(8, max_len=50)
    x = torch.zeros(2, 10, 8)
    np.testing.assert_allclose(module(x)[0].numpy(), sinusoidal_encoding(10, 8), atol=1e-6)


def test_attention_alone_is_blind_to_order():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 8)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    out, _ = scaled_dot_product_attention(x, x, x)
    shuffled, _ = scaled_dot_product_attention(x[:, order], x[:, order], x[:, order])
    torch.testing.assert_close(shuffled, out[:, order])  # permuted inputs → permuted outputs
    with_positions = SinusoidalPositionalEncoding(8)
    y, y_shuffled = with_positions(x), with_positions(x[:, order])
    out_p, _ = scaled_dot_product_attention(y, y, y)
    out_ps, _ = scaled_dot_product_attention(y_shuffled, y_shuffled, y_shuffled)
    assert not torch.allclose(out_ps, out_p[:, order], atol=1e-3)


def test_learned_positions_are_parameters_with_a_limit():
    module = LearnedPositionalEmbedding(8, max_len=4)
    assert module.table.weight.requires_grad
    with pytest.raises(ValueError, match="longer than max_len"):
        module(torch.zeros(1, 5, 8))


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    rope = RotaryEmbedding(16)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def score(m: int, n: int) -> float:
        rq = rope(q[None], torch.tensor([m]))[0]
        rk = rope(k[None], torch.tensor([n]))[0]
        return float(rq @ rk)

    for m, n in [(3, 1), (10, 2), (0, 7)]:
        for shift in (1, 5, 40):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-10)
    assert score(5, 1) != pytest.approx(score(9, 1), abs=1e-6)  # but the distance matters


def test_rope_keeps_lengths_and_leaves_position_zero_alone():
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64)
    rotated = rope(x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[..., 0, :], x[..., 0, :])
