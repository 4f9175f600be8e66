"""Figure builders for chapter 6, the Transformer block: pure functions from data to a Plotly figure.

They follow the conventions of :mod:`attnlab.figures` (titles below the mode bar's band,
menus in a row of their own, legends below, alt text in ``layout.meta``, Okabe–Ito colours).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, choice_heading, menu_row, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS, escape_labels

#: What a stage of the residual stream is, and its colour and bar pattern (readable without colour too).
STAGE_KINDS = {
    "stream": ("the residual stream", HEAD_COLOURS[0], ""),
    "update": ("a sublayer's update", HEAD_COLOURS[1], "/"),
    "normalised": ("after a LayerNorm", HEAD_COLOURS[2], "."),
}


def _stage_norms(stages: Mapping[str, object], kinds: Sequence[str], n_tokens: int) -> np.ndarray:
    from attnlab.validate import numeric_array

    if not stages:
        raise InputError("give at least one stage, e.g. {'input': x, 'attention update': a, ...}.")
    if len(kinds) != len(stages):
        raise InputError(f"give one kind per stage: {len(stages)} stages but {len(kinds)} kinds.")
    wrong = sorted(set(kinds) - set(STAGE_KINDS))
    if wrong:
        raise InputError(f"unknown kind(s) {wrong}: each stage is one of {sorted(STAGE_KINDS)}.")
    norms = []
    for name, vectors in stages.items():
        if hasattr(vectors, "detach"):
            vectors = vectors.detach().cpu().numpy()
        vectors = numeric_array(vectors, f"stage {name!r}")
        vectors = vectors.reshape(-1, vectors.shape[-1])  # (T, C): a batch of one sentence is fine
        if vectors.shape[0] != n_tokens:
            raise InputError(f"stage {name!r} has {vectors.shape[0]} token vectors but there are {n_tokens} tokens.")
        norms.append(np.linalg.norm(vectors, axis=-1))
    return np.array(norms)  # (stages, T)


def residual_stream(stages: Mapping[str, object], kinds: Sequence[str], tokens: Sequence[str],
                    title: str = "One token through the block", start: int = 0) -> go.Figure:
    """Bars of the length (L2 norm) of one token's vector at each stage of a block; a menu picks the token.

    ``stages`` maps a short stage name to its vectors, (T, C) or (1, T, C), in the order they
    happen; ``kinds`` says for each stage whether it is the residual ``"stream"``, a sublayer's
    ``"update"`` or ``"normalised"`` (the output of a LayerNorm).
    """
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence) or not tokens:
        raise InputError("tokens must be a non-empty list of token strings, such as ['the', 'cat'].")
    kinds = list(kinds)
    norms = np.round(_stage_norms(stages, kinds, len(tokens)), 2)  # (stages, T)
    if not 0 <= start < len(tokens):
        raise InputError(f"start must be a token index from 0 to {len(tokens) - 1}, got {start}.")
    names = escape_labels(list(stages))
    safe = escape_labels(tokens)
    rows = list(range(len(names)))
    fig = go.Figure()
    for kind, (label, colour, pattern) in STAGE_KINDS.items():
        mine = [i for i in rows if kinds[i] == kind]
        if not mine:
            continue
        fig.add_trace(go.Bar(
            y=mine, x=norms[mine, start], orientation="h", name=label, marker_color=colour,
            marker_pattern_shape=pattern, customdata=[names[i] for i in mine],
            hovertemplate="%{customdata}: length %{x:.2f}<extra></extra>"))
    traces = [[i for i in rows if kinds[i] == kind] for kind in STAGE_KINDS if kind in kinds]
    headings = [choice_heading(title, f"“{token}”") for token in tokens]
    buttons = [{"label": safe[t], "method": "update",
                "args": [{"x": [norms[mine, t].tolist() for mine in traces]}, {"title.text": wrap(headings[t])}]}
               for t in range(len(tokens))]
    lines = title_lines(*headings)
    menu, annotations, row = menu_row({"buttons": buttons, "direction": "down", "active": start}, "token:", 8)
    top = title_space(lines) + row + 8
    height = top + 34 * len(names) + 110  # bars, then the axis title and the legend below
    fig.update_yaxes(tickmode="array", tickvals=rows, ticktext=names, autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="vector length (L2 norm)", rangemode="tozero", automargin=True)
    fig.update_layout(
        title=title_layout(headings[start], height, lines), updatemenus=[menu], annotations=annotations,
        height=height, bargap=0.25, legend=LEGEND_BELOW, plot_bgcolor="white",
        margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"{html.escape(title)}: horizontal bars of the length of one token's vector at each of "
                     f"{len(names)} stages ({', '.join(names)}), coloured by kind (residual stream, sublayer update, "
                     "after a LayerNorm); a menu picks the token."},
    )
    return fig
