import numpy as np
import pytest

from attnlab.figures import attention_heatmap, attention_heatmap_choices
from attnlab.toy import TOKENS, toy_attention


def test_heatmap_keeps_repeated_tokens_apart():
    fig = attention_heatmap(toy_attention(), TOKENS)
    trace = fig.data[0]
    assert list(trace.y) == list(range(6))  # "the" twice: two rows, not one merged category
    assert list(fig.layout.yaxis.ticktext) == TOKENS
    assert fig.layout.yaxis.autorange == "reversed"  # first token at the top
    np.testing.assert_allclose(np.array(trace.z), toy_attention())


def test_heatmap_escapes_html_in_tokens():
    tokens = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]
    fig = attention_heatmap(np.full((2, 2), 0.5), tokens, title="<b>title</b>")
    for label in [*fig.layout.xaxis.ticktext, *fig.layout.yaxis.ticktext, fig.layout.title.text]:
        assert "<" not in label and ">" not in label
    assert "&lt;script&gt;" in fig.layout.xaxis.ticktext[0]


def test_heatmap_refuses_a_matrix_that_is_not_a_distribution():
    with pytest.raises(ValueError, match="sums to 1"):
        attention_heatmap(np.ones((2, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        attention_heatmap(np.eye(3), ["a", "b"])


def test_dropdown_switches_matrix_and_title():
    choices = {"T=1": toy_attention(1.0), "T=0.5": toy_attention(0.5)}
    fig = attention_heatmap_choices(choices, TOKENS, title="Toy", menu_label="temperature")
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == list(choices)
    restyle, relayout = buttons[1].args
    np.testing.assert_allclose(restyle["z"][0], toy_attention(0.5))
    # plotly.js 3+ ignores a plain "title" string in dropdown args.
    assert relayout == {"title.text": "Toy · T=0.5"}


def test_alt_text_is_stored_on_the_figure():
    fig = attention_heatmap(toy_attention(), TOKENS, alt="six words attending")
    assert fig.layout.meta["alt"] == "six words attending"


# ------------------------------------------------------------ explorer builders

from attnlab.attention import causal_mask_np, softmax  # noqa: E402
from attnlab.figures import (  # noqa: E402
    MASKED_COLOUR, attention_steps, head_view, masked_scores, model_view, positional_heatmap, similarity_matrix,
)
from attnlab.positional import sinusoidal_encoding  # noqa: E402


def _random_attention(shape, seed=0):
    return softmax(np.random.default_rng(seed).normal(size=shape) * 2)


def test_masked_cells_differ_from_zero_weight():
    mask = causal_mask_np(4)
    weights = softmax(np.where(mask, np.zeros((4, 4)), -np.inf))
    fig = attention_heatmap(weights, list("abcd"), mask=mask)
    z = np.array(fig.data[0].z, dtype=float)
    assert np.all(np.isnan(z[~mask])) and not np.any(np.isnan(z[mask]))
    assert fig.layout.plot_bgcolor == MASKED_COLOUR
    with pytest.raises(ValueError, match="masked cell"):
        attention_heatmap(np.full((4, 4), 0.25), list("abcd"), mask=mask)


def test_head_view_lines_follow_weights_and_escape_tokens():
    attention = _random_attention((2, 5, 5))
    tokens = ["<b>", "x", "y", "z", "w"]
    fig = head_view(attention, tokens, threshold=0.0)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2 * 5 * 5
    heaviest = max(lines, key=lambda t: t.opacity)
    h, q, k = np.unravel_index(np.argmax(attention), attention.shape)
    assert list(heaviest.y) == [q, k] and heaviest.legendgroup == f"head {h}"
    labels = [t for t in fig.data if t.mode == "text"][0].text
    assert labels[0] == "&lt;b&gt;"


def test_model_view_is_a_layer_by_head_grid_with_labels():
    attentions = _random_attention((3, 4, 6, 6))
    fig = model_view(attentions, {(0, 2): "previous token"})
    assert len(fig.data) == 12
    assert [a.text for a in fig.layout.annotations if a.text == "previous token"]


def test_attention_steps_uses_the_real_vectors():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(5, 8)), rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    fig = attention_steps(q, k, v, list("abcde"), query=2, temperature=0.5)
    scores, scaled, weights, output = fig.data
    np.testing.assert_allclose(scores.x, k @ q[2])
    np.testing.assert_allclose(weights.x, softmax(k @ q[2] / np.sqrt(8), temperature=0.5))
    np.testing.assert_allclose(output.z[0], weights.x @ v)
    causal = attention_steps(q, k, v, list("abcde"), query=2, causal=True)
    assert len(causal.data[0].x) == 3  # a causal query sees itself and the two tokens before


def test_position_figures():
    table = sinusoidal_encoding(30, 16)
    np.testing.assert_allclose(positional_heatmap(table).data[0].z, table)
    np.testing.assert_allclose(similarity_matrix(table).data[0].z, table @ table.T)


def test_raw_vs_masked_side_by_side():
    scores = np.random.default_rng(1).normal(size=(4, 4))
    fig = masked_scores(scores, causal_mask_np(4), list("abcd"))
    raw, masked = fig.data
    np.testing.assert_allclose(raw.z, scores)
    shown = np.array(masked.z, dtype=float)
    assert np.all(np.isnan(shown[np.triu_indices(4, 1)]))
    np.testing.assert_allclose(np.nansum(shown, axis=1), 1.0)
