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
