"""Figures of chapter 10, attention in pretrained models: pure functions from data to a Plotly figure.

They follow :mod:`attnlab.figures` and :mod:`attnlab.figure_layout`: light colours, titles below
the mode bar's band, menus in a row of their own, legends below, alt text in ``layout.meta``,
only bar, scatter and heatmap traces, small JSON (floats rounded to 3 decimals).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, menu_row, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS, SEQUENTIAL, escape_labels


def _grid(value: object, what: str) -> np.ndarray:
    from attnlab.validate import numeric_array

    array = numeric_array(value, what, min_dims=2)
    if array.ndim != 2 or 0 in array.shape:
        raise InputError(f"{what} must be a (layers, heads) table of scores, got shape {array.shape}.")
    return array


def pattern_gallery(means: Mapping[str, np.ndarray], spreads: Mapping[str, np.ndarray], n_sentences: int,
                    title: str = "Head patterns over many sentences") -> go.Figure:
    """A layers × heads heatmap of each pattern's mean score, a menu to pick the pattern; hover: mean ± spread."""
    if not isinstance(means, Mapping) or not means or set(means) != set(spreads):
        raise InputError("means and spreads must be dicts {pattern: (layers, heads) scores} with the same patterns.")
    names = list(means)
    tables = {name: (_grid(means[name], f"means[{name!r}]"), _grid(spreads[name], f"spreads[{name!r}]"))
              for name in names}
    n_layers, n_heads = tables[names[0]][0].shape
    for name, (mean, spread) in tables.items():
        if mean.shape != (n_layers, n_heads) or spread.shape != (n_layers, n_heads):
            raise InputError(f"every table must be ({n_layers}, {n_heads}); {name!r} is not.")

    def trace_data(name: str) -> dict:
        mean, spread = tables[name]
        return {"z": np.round(mean, 3), "customdata": np.round(spread, 3)}

    fig = go.Figure(go.Heatmap(
        **trace_data(names[0]), x=list(range(n_heads)), y=list(range(n_layers)), zmin=0, zmax=1,
        colorscale=SEQUENTIAL, colorbar={"title": {"text": "mean"}, "thickness": 12},
        hovertemplate="layer %{y}, head %{x}<br>mean %{z:.2f} ± %{customdata:.2f}<extra></extra>",
    ))
    buttons = [{"label": html.escape(name), "method": "restyle",
                "args": [{key: [value] for key, value in trace_data(name).items()}]} for name in names]
    top = title_space(title_lines(title))
    menu, annotations, row = menu_row({"buttons": buttons, "direction": "down", "showactive": True}, "Pattern", 8)
    height = top + row + 8 + 34 * n_layers + 70
    fig.update_xaxes(title_text="head", dtick=1, automargin=True)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed", automargin=True)
    fig.update_layout(
        title=title_layout(title, height), height=height, updatemenus=[menu], annotations=annotations,
        margin={"t": top + row + 8, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: a heatmap of {n_layers} layers by {n_heads} heads; its colour is each head's "
                     f"score for the chosen pattern, averaged over {n_sentences} sentences"},
    )
    return fig


def best_heads_chart(labels: Sequence[str], per_sentence: Sequence[Sequence[float]],
                     title: str = "The best head of each pattern") -> go.Figure:
    """One row per head: its score on each sentence (dots) and their mean ± standard deviation (bar)."""
    if isinstance(labels, str) or not labels or len(labels) != len(per_sentence):
        raise InputError("give one label per head and one list of per-sentence scores per label.")
    rows = [np.asarray(scores, dtype=float) for scores in per_sentence]
    if any(r.ndim != 1 or len(r) == 0 or np.isnan(r).any() for r in rows):
        raise InputError("each head needs a non-empty list of scores, with no NaN.")
    names = escape_labels(labels)
    fig = go.Figure(go.Bar(
        y=names, x=[round(float(r.mean()), 3) for r in rows], orientation="h", name="mean ± s.d.",
        marker={"color": "#56B4E9"}, error_x={"type": "data", "array": [round(float(r.std()), 3) for r in rows]},
        hovertemplate="%{y}: mean %{x:.2f}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        y=[name for name, r in zip(names, rows) for _ in r], x=np.round(np.concatenate(rows), 3).tolist(),
        mode="markers", name="one sentence", marker={"color": "#0072B2", "size": 6, "symbol": "line-ns-open"},
        hovertemplate="%{y}: %{x:.2f}<extra></extra>",
    ))
    fig.update_xaxes(title_text="score", range=[0, 1.02])
    fig.update_yaxes(autorange="reversed", automargin=True)
    top = title_space(title_lines(title))
    height = top + 36 * len(rows) + 110
    fig.update_layout(
        title=title_layout(title, height), height=height, legend=LEGEND_BELOW, plot_bgcolor="white",
        margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: for each of {len(rows)} heads a bar of its mean score and a tick for each sentence"},
    )
    return fig


def relevance_chart(sentences: Mapping[str, tuple[Sequence[str], Mapping[str, Sequence[float]]]],
                    title: str = "Which tokens matter?") -> go.Figure:
    """Grouped bars, one group per token, one bar per method (each method's shares sum to 1); a menu picks the sentence.

    ``sentences`` is {name: (tokens, {method: relevance per token})}.
    """
    if not isinstance(sentences, Mapping) or not sentences:
        raise InputError("sentences must be a dict {name: (tokens, {method: scores})} with at least one sentence.")
    fig = go.Figure()
    names = list(sentences)
    methods = list(sentences[names[0]][1])
    buttons = []
    for s_index, name in enumerate(names):
        tokens, scores = sentences[name]
        if list(scores) != methods:
            raise InputError(f"every sentence needs the same methods, in the same order: {methods}.")
        for m_index, method in enumerate(methods):
            values = np.asarray(scores[method], dtype=float)
            if values.shape != (len(tokens),) or np.any(values < 0) or not np.isclose(values.sum(), 1, atol=1e-3):
                raise InputError(f"{method!r} for {name!r} must be one non-negative share per token, summing to 1.")
            fig.add_trace(go.Bar(
                x=list(range(len(tokens))), y=np.round(values, 3), name=html.escape(method),
                marker={"color": HEAD_COLOURS[m_index % len(HEAD_COLOURS)]}, visible=s_index == 0,
                customdata=escape_labels(tokens), showlegend=s_index == 0, legendgroup=method,
                hovertemplate=f"{html.escape(method)}: %{{customdata}} %{{y:.3f}}<extra></extra>",
            ))
        visible = [i // len(methods) == s_index for i in range(len(names) * len(methods))]
        axis = {"xaxis.ticktext": escape_labels(tokens), "xaxis.tickvals": list(range(len(tokens)))}
        buttons.append({"label": html.escape(name), "method": "update", "args": [{"visible": visible}, axis]})
    first_tokens = sentences[names[0]][0]
    top = title_space(title_lines(title))
    menu, annotations, row = menu_row({"buttons": buttons, "direction": "down", "showactive": True}, "Sentence", 8)
    height = top + row + 8 + 300
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(first_tokens))), ticktext=escape_labels(first_tokens),
                     automargin=True)
    fig.update_yaxes(title_text="share", rangemode="tozero")
    fig.update_layout(
        title=title_layout(title, height), height=height, barmode="group", legend=LEGEND_BELOW,
        updatemenus=[menu], annotations=annotations, plot_bgcolor="white",
        margin={"t": top + row + 8, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: for each token of the chosen sentence, one bar per method "
                     f"({', '.join(methods)}), the share of the relevance it gives that token"},
    )
    return fig


def pronoun_chart(words: Sequence[str], first: Sequence[float], second: Sequence[float], names: Sequence[str],
                  title: str = "Where the pronoun's weight goes") -> go.Figure:
    """The pronoun's attention row in two sentences that differ in one word, side by side (each row sums to 1).

    ``words`` labels the shared positions (the changed word as "big / small")."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.shape != (len(words),) or second.shape != (len(words),):
        raise InputError("give one weight per word in each sentence, the same words in both.")
    for row in (first, second):
        if np.any(row < 0) or not np.isclose(row.sum(), 1, atol=1e-4):
            raise InputError("each row of attention weights must be non-negative and sum to 1.")
    labels = escape_labels(words)
    fig = go.Figure()
    for index, (row, name) in enumerate(zip((first, second), names)):
        fig.add_trace(go.Bar(x=list(range(len(words))), y=np.round(row, 3), name=html.escape(name),
                             marker={"color": HEAD_COLOURS[index]}, customdata=labels,
                             hovertemplate="%{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(words))), ticktext=labels, automargin=True)
    fig.update_yaxes(title_text="weight (whole row)", rangemode="tozero")
    top = title_space(title_lines(title))
    height = top + 330
    fig.update_layout(
        title=title_layout(title, height), height=height, barmode="group", legend=LEGEND_BELOW, plot_bgcolor="white",
        margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{title}: bars of the pronoun's attention on each of {len(words)} words, "
                     f"one colour per sentence ({wrap(' / '.join(names), 200)})"},
    )
    return fig
