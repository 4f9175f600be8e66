import html

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


def test_raw_above_masked():
    scores = np.random.default_rng(1).normal(size=(4, 4))
    fig = masked_scores(scores, causal_mask_np(4), list("abcd"))
    raw, masked = fig.data
    np.testing.assert_allclose(raw.z, scores)
    shown = np.array(masked.z, dtype=float)
    assert np.all(np.isnan(shown[np.triu_indices(4, 1)]))
    np.testing.assert_allclose(np.nansum(shown, axis=1), 1.0)


# ------------------------------------------------------------ layout that fits a phone (issue 11)
# The browser checks are tests/test_figure_layout.py; these hold without a browser.

from attnlab import figure_layout, figures  # noqa: E402


def _steps_explorer(temperatures=(0.25, 1.0, 4.0)):
    rng = np.random.default_rng(7)
    q, k, v = (rng.normal(size=(6, 8)) * 3 for _ in range(3))
    return figures.attention_steps_explorer(q, k, v, list("abcdef"), temperatures=temperatures)


def test_softmax_panel_holds_every_weight_after_every_frame():
    fig = _steps_explorer()
    axis = fig.layout.xaxis3  # the third panel: the softmax weights
    assert tuple(axis.range) == (0, 1) and axis.autorange in (None, False)
    weights = [np.asarray(trace.x) for frame in fig.frames for trace in frame.data if trace.type == "bar"]
    assert len(weights) == 3 * 6 and max(w.max() for w in weights) > 0.9  # T = 0.25 is sharp: nearly 1
    assert all(0 <= w.min() and w.max() <= 1 for w in weights)


def test_titles_wrap_for_a_phone_and_leave_the_mode_bar_band_free():
    tokens = "The keys that the man on the left had left on the table are missing".split()
    fig = figures.chain_vs_web(tokens, source=1, target=13)
    for text in [fig.layout.title.text] + [button.args[1]["title.text"] for button in fig.layout.updatemenus[0].buttons]:
        assert max(len(html.unescape(line)) for line in text.split("<br>")) <= figure_layout.TITLE_CHARS
    for fig in (fig, _steps_explorer(), figures.influence_chart([1.0, 0.1], [1.0, 1.0])):
        title = fig.layout.title
        assert title.yref == "container" and title.yanchor == "top" and title.xanchor == "left"
        assert (1 - title.y) * fig.layout.height >= figure_layout.MODEBAR_BAND  # below the mode bar
        assert fig.layout.margin.t >= figure_layout.MODEBAR_BAND + figure_layout.TITLE_LINE  # the plot starts below the title


def test_chain_and_web_stay_inside_their_axes():
    tokens = "The keys that the man on the left had left on the table are missing".split()
    fig = figures.chain_vs_web(tokens, source=1, target=13)
    low, high = fig.layout.yaxis.range
    for trace in fig.data:
        ys = [y for y in trace.y if y is not None]
        assert low <= min(ys) and max(ys) <= high, trace.name
    assert list(fig.layout.xaxis.ticktext) == tokens  # the words are tick labels: plotly tilts them on a phone


def test_legends_lie_below_the_plot():
    for fig in (figures.race_chart([16, 64], [1.0, 2.0], [0.1, 0.5], "cpu"),
                figures.influence_chart([1.0, 0.1], [1.0, 1.0]),
                figures.scaling_chart([4, 16], [4, 16], [1, 1], [0.5, 0.9], [0.3, 0.3]),
                figures.normalise_vs_softmax({"x": [2.0, -1.0, 0.5]}, ["a", "b", "c"]),
                figures.embedding_scatter(np.eye(3)[:, :2], ["a", "b", "c"], ["g", "g", "h"], [0.5, 0.2])):
        legend = fig.layout.legend
        assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom")


def test_race_chart_ticks_are_far_enough_apart_for_a_phone():
    lengths = [16, 64, 256, 1024, 2048, 4096, 8192]
    fig = figures.race_chart(lengths, [1.0] * 7, [1.0] * 7, "cpu")
    ticks = list(fig.layout.xaxis.tickvals)
    assert ticks == [16, 64, 256, 1024, 4096]
    assert all(b / a >= 3.5 for a, b in zip(ticks, ticks[1:]))


def _label_boxes(points, words, positions, x_range, y_range, width, height):
    """The label boxes place_labels assumes, in px: (left, top, right, bottom) per word."""
    boxes = []
    for (x, y), word, position in zip(points, words, positions):
        px = (x - x_range[0]) / (x_range[1] - x_range[0]) * width
        py = height - (y - y_range[0]) / (y_range[1] - y_range[0]) * height
        w, h = figure_layout.LABEL_CHAR * len(word) + 4, 17
        dx, dy = figure_layout.LABEL_POSITIONS[position]
        cx = px + (dx * (w / 2 + 1) if dy else dx * (5.5 + 2 + w / 2))
        cy = py + dy * (5.5 + 2 + h / 2)
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return boxes


def test_scatter_labels_are_placed_apart_and_inside_the_axes():
    # Two tight clusters, like the cities and the feelings of chapter 2.
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.06, (6, 2)), rng.normal(0, 0.06, (6, 2)) + [1, 1]])
    words = ["paris", "london", "berlin", "tokyo", "rome", "madrid", "happy", "sad", "angry", "afraid", "glad", "calm"]
    positions, x_range, y_range = figure_layout.place_labels(points, words)
    assert len(set(positions)) > 2  # not just above and below
    for width, height in figure_layout.SCATTER_AREAS:
        boxes = _label_boxes(points, words, positions, x_range, y_range, width, height)
        for i, a in enumerate(boxes):
            assert a[0] >= -1 and a[1] >= -1 and a[2] <= width + 1 and a[3] <= height + 1, words[i]
            for j, b in enumerate(boxes[:i]):
                overlap = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
                assert min(overlap) <= 3, (words[i], words[j], width)
    fig = figures.embedding_scatter(points, words, ["cities"] * 6 + ["feelings"] * 6, [0.3, 0.2])
    assert [p for trace in fig.data for p in trace.textposition] == positions
    assert tuple(fig.layout.xaxis.range) == tuple(x_range) and tuple(fig.layout.yaxis.range) == tuple(y_range)


def test_a_long_text_gets_a_bounded_heatmap_with_readable_labels():
    from attnlab.figures import token_row_height

    n = 512  # MiniLM's longest input: what a 10,000-character text is cut to
    tokens = [f"t{i}" for i in range(n)]
    fig = attention_heatmap(np.full((n, n), 1 / n), tokens)
    assert fig.layout.height <= 3500  # not ~15,000 px
    rows = np.diff(fig.layout.yaxis.tickvals) * token_row_height(n)
    assert rows.min() >= 14  # labelled rows far enough apart to read
    assert len(fig.layout.xaxis.tickvals) <= 40
    short = attention_heatmap(toy_attention(1.0), TOKENS)  # a sentence keeps one label per token
    assert list(short.layout.yaxis.ticktext) == list(TOKENS) and list(short.layout.xaxis.ticktext) == list(TOKENS)
