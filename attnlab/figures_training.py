"""Figures of chapter 8, training a tiny Transformer: loss curves, the attention film, schedules, clipping.

Plotly builders are pure functions data → ``go.Figure`` following :mod:`attnlab.figures`'
conventions; the comparisons over several seeds are seaborn PNGs (white background,
colour-blind palette), like chapter 6's :func:`attnlab.norm_study.loss_curves`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, title_layout, title_lines, title_space
from attnlab.figures import HEAD_COLOURS, SEQUENTIAL, _check_attention, escape_labels


def smooth(values: Sequence[float], window: int = 10) -> np.ndarray:
    """The mean of the last ``window`` values at every step (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"give a non-empty list of numbers, got shape {values.shape}.")
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def round_rows(weights, decimals: int = 3) -> np.ndarray:
    """Attention rows rounded to ``decimals`` (small figure JSON) that still sum to 1: each row's
    rounding error goes to its largest weight."""
    rounded = np.asarray(weights, dtype=float).round(decimals)
    rows = rounded.reshape(-1, rounded.shape[-1])
    biggest = rows.argmax(-1)
    rows[np.arange(len(rows)), biggest] += 1.0 - rows.sum(-1)
    return rows.reshape(rounded.shape).round(decimals)


def _thin(n: int, most: int = 150) -> np.ndarray:
    """At most ``most`` evenly spread indices of 0..n-1, the last one included: small figure JSON."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))


def line_chart(curves: Mapping[str, Sequence[float]], y_title: str, title: str, alt: str,
               log_y: bool = False, line: float | None = None, line_label: str = "",
               window: int = 10) -> go.Figure:
    """One smoothed line per named curve against the training step (raw values on hover)."""
    if not curves:
        raise InputError("give at least one curve, e.g. {'loss': losses}.")
    fig = go.Figure()
    for colour, (name, values) in zip(HEAD_COLOURS, curves.items()):
        raw = np.asarray(values, dtype=float)
        keep = _thin(raw.size)
        fig.add_trace(go.Scatter(x=(keep + 1).tolist(), y=smooth(raw, window)[keep].round(4).tolist(), name=name,
                                 mode="lines", line={"color": colour, "width": 2.5},
                                 hovertemplate="step %{x}: %{y:.3f}<extra>" + escape_labels([name])[0] + "</extra>"))
    if line is not None:
        fig.add_hline(y=line, line={"color": "#555555", "dash": "dot", "width": 1.5},
                      annotation_text=line_label, annotation_position="top right")
    top = title_space(title_lines(title))
    height = top + 300
    fig.update_layout(title=title_layout(title, height), height=height, legend=LEGEND_BELOW,
                      showlegend=len(curves) > 1, margin={"t": top + 8, "l": 10, "r": 10, "b": 10},
                      meta={"alt": alt})
    fig.update_xaxes(title_text="training step", automargin=True)
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear", automargin=True)
    if log_y:  # fit the decades the data spans (an annotation would otherwise stretch the axis), label decades only
        shown = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data] + [np.array([line or np.nan])])
        shown = shown[np.isfinite(shown) & (shown > 0)]
        if shown.size:
            fig.update_yaxes(range=[np.log10(shown.min()) - 0.1, np.log10(shown.max()) + 0.25], dtick=1)
    return fig


def attention_film(maps: Sequence[np.ndarray], steps: Sequence[int], masses: Sequence[float],
                   losses: Sequence[float], source: Sequence[str], output: Sequence[str],
                   pattern: str = "on the anti-diagonal", title: str = "Watch attention learn",
                   alt: str | None = None, decimals: int = 3) -> go.Figure:
    """Cross-attention maps (T, S) photographed at ``steps``, one frame each behind a step slider,
    above the training loss with a marker at the frame's step. Works without a kernel.

    ``masses`` are the measured share of weight ``pattern`` at each snapshot; ``losses`` the loss of
    every training step (step 1 first); ``source`` and ``output`` label the columns and rows.
    """
    from plotly.subplots import make_subplots

    maps = [np.asarray(m, dtype=float) for m in maps]
    if not maps or not len(maps) == len(steps) == len(masses):
        raise InputError(f"give one map, one step and one mass per snapshot; got {len(maps)}, {len(steps)}, "
                         f"{len(masses)}.")
    for m in maps:
        _check_attention(m, len(output), len(source))  # rows are distributions, the shapes match the labels
    losses = np.asarray(losses, dtype=float)
    curve = smooth(losses)
    at = [float(curve[s - 1]) if s > 0 else float(losses[0]) for s in steps]  # the loss around each snapshot
    cols, rows = escape_labels(source), escape_labels(output)
    fig = make_subplots(rows=2, cols=1, row_heights=[0.72, 0.28], vertical_spacing=0.16)
    hover = "output %{y} reads input %{x}<br>weight %{z:.3f}<extra></extra>"
    fig.add_trace(go.Heatmap(z=round_rows(maps[0], decimals), zmin=0, zmax=1, colorscale=SEQUENTIAL, hovertemplate=hover,
                             colorbar={"title": {"text": "weight"}, "thickness": 12, "len": 0.62, "y": 1,
                                       "yanchor": "top"}), row=1, col=1)
    keep = _thin(losses.size)
    fig.add_trace(go.Scatter(x=(keep + 1).tolist(), y=curve[keep].round(4).tolist(), mode="lines",
                             line={"color": "#0072B2", "width": 2}, name="loss", showlegend=False,
                             hovertemplate="step %{x}: loss %{y:.3f}<extra></extra>"), row=2, col=1)
    fig.add_trace(go.Scatter(x=[max(steps[0], 1)], y=[round(at[0], 4)], mode="markers", showlegend=False,
                             marker={"color": "#D55E00", "size": 11, "line": {"color": "white", "width": 1.5}},
                             hovertemplate="snapshot at step %{x}: loss %{y:.3f}<extra></extra>"), row=2, col=1)
    s_ticks = list(range(len(cols)))
    fig.update_xaxes(tickmode="array", tickvals=s_ticks, ticktext=cols, title_text="input digit", side="top",
                     constrain="domain", row=1, col=1)
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(rows))), ticktext=rows, title_text="output digit",
                     autorange="reversed", scaleanchor="x", constrain="domain", row=1, col=1)
    fig.update_xaxes(title_text="training step", nticks=5, row=2, col=1)
    fig.update_yaxes(title_text="loss", type="log", nticks=4, row=2, col=1)

    def reading(i: int) -> dict:
        # Two short lines: one long line runs off a phone's screen.
        text = f"step {steps[i]} · loss {at[i]:.3g}<br>{100 * masses[i]:.0f} % {pattern}"
        return {"text": text, "showarrow": False, "x": 0, "xref": "paper", "xanchor": "left", "align": "left",
                "y": 1, "yref": "paper", "yanchor": "bottom", "yshift": 40, "font": {"size": 13}}

    frames, slider = [], []
    for i, step in enumerate(steps):
        name = str(step)
        frames.append(go.Frame(name=name, traces=[0, 2], layout={"annotations": [reading(i)]},
                               data=[go.Heatmap(z=round_rows(maps[i], decimals)),
                                     go.Scatter(x=[max(step, 1)], y=[round(at[i], 4)])]))
        slider.append({"label": name, "method": "animate", "args": [
            [name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}]})
    fig.frames = frames
    top = title_space(title_lines(title)) + 24 + 46  # the title, the reading, the input digits on top
    bottom = 150  # the step axis's ticks and title, then the slider
    height = top + 420 + bottom
    fig.update_layout(
        title=title_layout(title, height), height=height, annotations=[reading(0)],
        margin={"t": top, "b": bottom, "l": 10, "r": 10},
        sliders=[{"steps": slider, "active": 0, "currentvalue": {"visible": False}, "font": {"size": 11},
                  "x": 0, "xanchor": "left", "len": 1, "y": 0, "yanchor": "top", "pad": {"t": 62, "l": 10, "r": 10}}],
        meta={"alt": alt or f"{title}: a heatmap of cross-attention, one output digit per row and one input digit "
                            f"per column, at {len(steps)} training steps chosen with a slider, above the loss curve "
                            "with a marker at the chosen step."},
    )
    return fig


def schedule_chart(panels: Mapping[str, Mapping[str, tuple[Sequence[int], Sequence[float]]]],
                   title: str = "Learning-rate schedules", alt: str | None = None) -> go.Figure:
    """Learning rate against step, one panel per ``panels`` key, one line per schedule in each."""
    from plotly.subplots import make_subplots

    if not panels:
        raise InputError("give at least one panel of schedules.")
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=list(panels), vertical_spacing=0.22)
    names: list[str] = []
    shown: set[str] = set()
    for row, curves in enumerate(panels.values(), start=1):
        for name, (x, y) in curves.items():
            if name not in names:
                names.append(name)
            x, y = np.asarray(x), np.asarray(y, dtype=float)
            keep = _thin(x.size, 200)
            shown_before = name in shown
            fig.add_trace(go.Scatter(x=x[keep].tolist(), y=[float(f"{v:.4g}") for v in y[keep]], mode="lines",
                                     name=name, legendgroup=name, showlegend=not shown_before,
                                     line={"color": HEAD_COLOURS[names.index(name)], "width": 2.5},
                                     hovertemplate="step %{x}: lr %{y:.2e}<extra></extra>"), row=row, col=1)
            shown.add(name)
        fig.update_yaxes(title_text="learning rate", exponentformat="e", nticks=4, automargin=True, row=row, col=1)
        fig.update_xaxes(title_text="step", nticks=5, automargin=True, row=row, col=1)
    fig.update_annotations(font={"size": 12})
    top = title_space(title_lines(title)) + 24
    height = top + 250 * len(panels) + 60
    fig.update_layout(title=title_layout(title, height), height=height, legend=LEGEND_BELOW,
                      margin={"t": top, "l": 10, "r": 10, "b": 10},
                      meta={"alt": alt or f"{title}: learning rate against training step, "
                                          f"{len(panels)} panels, one line per schedule."})
    return fig


def clipping_chart(labels: Sequence[str], norms: Sequence[float], cosines: Sequence[float],
                   title: str = "Clipping a real gradient", alt: str | None = None) -> go.Figure:
    """Per way of clipping: the gradient's norm after it, and its cosine with the unclipped gradient."""
    from plotly.subplots import make_subplots

    if not len(labels) == len(norms) == len(cosines) or not labels:
        raise InputError("give one norm and one cosine per label.")
    names = escape_labels(labels)
    fig = make_subplots(rows=2, cols=1, shared_yaxes=False, vertical_spacing=0.2,
                        subplot_titles=("norm of the whole gradient", "cosine with the unclipped gradient"))
    for row, values, fmt in ((1, norms, ".3g"), (2, cosines, ".3f")):
        fig.add_trace(go.Bar(x=[float(f"{v:.4g}") for v in values], y=names, orientation="h", showlegend=False,
                             marker_color=[HEAD_COLOURS[i % len(HEAD_COLOURS)] for i in range(len(names))],
                             text=[f"{v:{fmt}}" for v in values], textposition="auto",
                             hovertemplate="%{y}: %{x:" + fmt + "}<extra></extra>"), row=row, col=1)
        fig.update_yaxes(autorange="reversed", automargin=True, row=row, col=1)
        fig.update_xaxes(nticks=4, automargin=True, row=row, col=1)
    fig.update_xaxes(range=[min(0.0, min(cosines)), 1.0], row=2, col=1)
    fig.update_annotations(font={"size": 12})
    top = title_space(title_lines(title)) + 24
    height = top + 2 * (34 * len(labels) + 60) + 40
    fig.update_layout(title=title_layout(title, height), height=height,
                      margin={"t": top, "l": 10, "r": 10, "b": 10},
                      meta={"alt": alt or f"{title}: two bar charts, the gradient norm and the cosine with the "
                                          f"unclipped gradient, for {len(labels)} ways of clipping."})
    return fig


# ------------------------------------------------------------------ seaborn: comparisons over seeds


def study_curves(results, title: str | None = None, y: str = "smoothed", y_label: str = "training loss"):
    """Seaborn line plot of ``results`` (columns arm, seed, step, ``y``): mean and range over the seeds
    per arm. Returns the Matplotlib figure, white background, colour-blind-safe colours."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    _has_columns(results, ["arm", "seed", "step", y])
    arms = list(dict.fromkeys(results["arm"]))
    palette = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95):
        fig, ax = plt.subplots(figsize=(4.4, 3.4))
        sns.lineplot(data=results, x="step", y=y, hue="arm", style="arm", hue_order=arms, palette=palette,
                     errorbar=("pi", 100), linewidth=2, ax=ax)
        ax.set(xlabel="training step", ylabel=y_label, yscale="log")
        sns.move_legend(ax, "upper right", title=None, frameon=True, fontsize=9)
        if title:
            ax.set_title(title, fontsize=11)
        fig.set_facecolor("white")
        fig.tight_layout()
    plt.close(fig)
    return fig


def study_points(results, metrics: Mapping[str, str], title: str | None = None):
    """Seaborn strip plots, one panel per metric: each seed's value per arm, with the mean as a bar.

    ``results`` has columns arm, seed and the ``metrics`` keys; ``metrics`` maps a column to its axis label.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    _has_columns(results, ["arm", "seed", *metrics])
    arms = list(dict.fromkeys(results["arm"]))
    palette = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        fig, axes = plt.subplots(len(metrics), 1, figsize=(4.4, 1.5 + 1.45 * len(metrics)), squeeze=False)
        for ax, (column, label) in zip(axes[:, 0], metrics.items()):
            sns.pointplot(data=results, y="arm", x=column, order=arms, errorbar=None, color="0.25",
                          markers="|", markersize=18, linestyle="none", ax=ax)
            sns.stripplot(data=results, y="arm", x=column, order=arms, hue="arm", palette=palette, size=8,
                          jitter=0.12, legend=False, ax=ax)
            ax.set(xlabel=label, ylabel="")
        if title:
            fig.suptitle(title, fontsize=11)
        fig.set_facecolor("white")
        fig.tight_layout()
    plt.close(fig)
    return fig


def _has_columns(frame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in getattr(frame, "columns", [])]
    if missing:
        raise InputError(f"the results need the columns {list(columns)}; missing {missing}.")
