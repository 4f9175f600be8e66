"""Figure builders (and the small measurements behind them) for chapter 9, the mini-GPT.

Pure functions from data to a Plotly figure, following the conventions of :mod:`attnlab.figures`:
titles below the mode bar's band, menus in a row of their own, legends below, alt text in
``layout.meta``, Okabe–Ito colours, every text shown escaped. Besides the figures:

- :func:`binned` averages a long per-step curve into a few points (small figures);
- :func:`sample_stats` measures a generated text (real words, repeated words, distinct characters);
- :func:`find_phase_change` decides, from the measurements alone, whether a head (induction or
  previous-token) appeared suddenly (a phase change) during training, and :func:`loss_bump` whether
  the validation loss fell faster than usual meanwhile.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW, menu_row, title_layout, title_lines, title_space, wrap
from attnlab.figures import HEAD_COLOURS, VISIBLE_BLANKS, escape_labels

#: How a character that is hard to see is shown in labels.
VISIBLE = VISIBLE_BLANKS  # a space is ␣, a newline ⏎: the course's one convention
#: Above this score a head counts as an induction (or previous-token) head; a phase change needs one.
INDUCTION_HEAD = 0.3
#: The rise of a score is measured from RISE[0] to RISE[1] of its final value (10 % → 90 %).
RISE = (0.1, 0.9)
#: Sudden: that rise takes at most this share of the run's steps.
SUDDEN_SHARE = 0.1
#: A bump in the loss: during the rise it falls this many times faster than the median nearby interval.
BUMP = 1.5
#: How many intervals before and after the rise the bump test compares with.
NEIGHBOURS = 3


def show_chars(chars: Sequence[str]) -> list[str]:
    """Characters as visible labels, not yet escaped (figure builders escape): a space is ␣, a newline ⏎."""
    return [VISIBLE.get(c, c) for c in chars]


def binned(values: Sequence[float], bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A per-step curve averaged over ``bins`` equal stretches: (last step of each stretch, mean), steps from 1."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise InputError("values must be a non-empty list of numbers, one per step.")
    if not isinstance(bins, int) or bins < 1:
        raise InputError(f"bins must be a whole number of at least 1, got {bins!r}.")
    edges = np.linspace(0, values.size, min(bins, values.size) + 1).round().astype(int)
    means = np.array([values[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    return edges[1:], means


def loss_curve(steps: Sequence[float], train_loss: Sequence[float], eval_steps: Sequence[float] = (),
               val_loss: Sequence[float] = (), title: str = "Loss while training", alt: str | None = None) -> go.Figure:
    """Training loss (a line) and validation loss (markers) against the step, in nats per character."""
    if len(steps) != len(train_loss) or len(eval_steps) != len(val_loss):
        raise InputError("give one loss per step: steps and train_loss (and eval_steps and val_loss) "
                         "must have the same length.")
    fig = go.Figure(go.Scatter(x=list(steps), y=np.round(np.asarray(train_loss, float), 4).tolist(), mode="lines",
                               name="training (batches)", line={"color": HEAD_COLOURS[0], "width": 2},
                               hovertemplate="step %{x}: %{y:.3f}<extra>training</extra>"))
    if len(eval_steps):
        fig.add_trace(go.Scatter(x=list(eval_steps), y=np.round(np.asarray(val_loss, float), 4).tolist(),
                                 mode="lines+markers", name="validation (unseen plays)",
                                 line={"color": HEAD_COLOURS[5], "width": 2, "dash": "dash"},
                                 marker={"symbol": "diamond", "size": 8},
                                 hovertemplate="step %{x}: %{y:.3f}<extra>validation</extra>"))
    top = title_space(title_lines(title))
    fig.update_layout(
        title=title_layout(title, 400), height=400, plot_bgcolor="white", legend=LEGEND_BELOW,
        margin={"t": top + 4, "l": 10, "r": 10, "b": 10},
        xaxis={"title": {"text": "step"}, "automargin": True, "gridcolor": "#e5e5e5"},
        yaxis={"title": {"text": "loss (nats / char)"}, "automargin": True, "gridcolor": "#e5e5e5"},
        meta={"alt": alt or f"{title}: the training loss per step as a line"
                            + (" and the validation loss as dashed markers" if len(eval_steps) else "")
                            + ", both falling as the model learns"},
    )
    return fig


def next_char_bars(settings: Mapping[str, np.ndarray], chars: Sequence[str], context: str,
                   title: str = "The next character") -> go.Figure:
    """Bars of the next character's sampling probabilities, one setting at a time from a menu.

    ``settings`` maps a setting's name (e.g. "temperature 0.5") to the probabilities of ``chars``.
    """
    if not settings:
        raise InputError("give at least one setting, e.g. {'temperature 1': probabilities}.")
    labels = escape_labels(show_chars(chars))
    names = list(settings)
    rows = []
    for name in names:
        p = np.asarray(settings[name], dtype=float)
        if p.shape != (len(labels),):
            raise InputError(f"setting {name!r}: give one probability per character ({len(labels)}), got shape {p.shape}.")
        rows.append(np.round(p, 4).tolist())
    shown_context = context[-30:].replace("\n", VISIBLE["\n"])
    headings = [f"{title} · {name}" for name in names]
    fig = go.Figure(go.Bar(x=labels, y=rows[0], marker_color=HEAD_COLOURS[0],
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    buttons = [{"label": html.escape(name), "method": "update",
                "args": [{"y": [row]}, {"title.text": wrap(heading)}]}
               for name, row, heading in zip(names, rows, headings)]
    lines = title_lines(*headings)
    menu, annotations, row_px = menu_row({"buttons": buttons, "direction": "down", "showactive": True}, "setting:", 8)
    top = title_space(lines) + row_px + 8
    height = 440
    fig.update_layout(
        title=title_layout(headings[0], height, lines), height=height, updatemenus=[menu], annotations=annotations,
        plot_bgcolor="white", margin={"t": top, "l": 10, "r": 10, "b": 10},
        xaxis={"title": {"text": wrap(f"next character after “…{shown_context}”")}, "automargin": True,
               "type": "category"},
        yaxis={"title": {"text": "probability"}, "range": [0, 1], "automargin": True, "gridcolor": "#e5e5e5"},
        meta={"alt": f"Bars of the probability of each candidate next character after a line of Shakespeare, "
                     f"for one sampling setting at a time ({len(names)} settings in a menu): lower temperatures "
                     "and top-k or top-p pile the probability onto fewer characters."},
    )
    return fig


def sample_explorer(samples: Mapping[str, str], notes: Mapping[str, str] | None = None,
                    title: str = "Generated text", width: int = 40) -> go.Figure:
    """A static explorer of pre-generated texts: a menu picks a setting, the page shows its text.

    Works on the static site with no kernel (a plotly menu that swaps one annotation's text).
    Each text is HTML-escaped and wrapped at ``width`` characters, so it reads on a phone.
    """
    if not samples:
        raise InputError("give at least one sample, e.g. {'temperature 1': 'ROMEO: ...'}.")
    notes = notes or {}
    names = list(samples)
    for name in names:
        if not isinstance(samples[name], str):
            raise InputError(f"sample {name!r} must be a string, not {type(samples[name]).__name__}.")

    def body(name: str) -> str:
        note = f"<i>{wrap(notes[name], width)}</i><br><br>" if name in notes else ""  # wrap escapes
        return note + wrap(samples[name], width)

    lines = max(body(name).count("<br>") + 1 for name in names)
    headings = [f"{title} · {name}" for name in names]
    title_rows = title_lines(*headings)
    menu, labels, row_px = menu_row({"buttons": [], "direction": "down", "showactive": True}, "setting:", 8)
    top = title_space(title_rows) + row_px + 8
    plot_px = 17 * lines + 20
    height = top + plot_px + 10
    text = {"text": body(names[0]), "showarrow": False, "x": 0, "xref": "paper", "xanchor": "left", "y": 1,
            "yref": "paper", "yanchor": "top", "align": "left", "font": {"family": "monospace", "size": 12}}
    menu["buttons"] = [{"label": html.escape(name), "method": "relayout",
                        "args": [{"annotations[0].text": body(name), "title.text": wrap(heading)}]}
                       for name, heading in zip(names, headings)]
    fig = go.Figure()
    fig.update_layout(
        title=title_layout(headings[0], height, title_rows), height=height, updatemenus=[menu],
        annotations=[text, *labels], plot_bgcolor="rgba(0,0,0,0)",
        xaxis={"visible": False, "range": [0, 1]}, yaxis={"visible": False, "range": [0, 1]},
        margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"Text generated by the mini-GPT under {len(names)} sampling settings (temperature, top-k, "
                     "top-p), one at a time, picked from a menu; each comes with what was measured on it."},
    )
    return fig


def induction_over_training(steps: Sequence[int], induction: np.ndarray, val_loss: Sequence[float],
                            highlight: int = 6, title: str = "Induction heads and the loss",
                            previous: Sequence[float] | None = None, previous_name: str = "previous-token head",
                            chance: float | None = None) -> go.Figure:
    """Two panels sharing the step axis: the validation loss (top) and every head's induction score (bottom).

    ``induction`` is (evaluations, layers, heads). The ``highlight`` heads with the highest final
    score get an Okabe–Ito colour each; the others are thin grey lines. ``previous`` (one score per
    step) adds a previous-token head's score as a thick black dashed line; ``chance`` a dotted
    line at the score of evenly spread attention.
    """
    from plotly.subplots import make_subplots

    induction = np.asarray(induction, dtype=float)
    if induction.ndim != 3 or induction.shape[0] != len(steps) or len(val_loss) != len(steps):
        raise InputError(f"give one (layers, heads) table of scores and one validation loss per step: "
                         f"{len(steps)} steps, scores of shape {induction.shape}, {len(val_loss)} losses.")
    n_layers, n_heads = induction.shape[1:]
    final = induction[-1].ravel()
    order = list(np.argsort(final)[::-1])
    coloured = order[:min(highlight, len(HEAD_COLOURS) - 1)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.4, 0.6],
                        subplot_titles=("validation loss", "head scores" if previous is not None
                                        else "induction score of each head"))
    fig.update_annotations(font={"size": 13})
    steps = [int(s) for s in steps]
    fig.add_trace(go.Scatter(x=steps, y=np.round(np.asarray(val_loss, float), 4).tolist(), mode="lines+markers",
                             name="validation loss", line={"color": "#555555", "width": 2}, marker={"size": 5},
                             hovertemplate="step %{x}: %{y:.3f}<extra>validation loss</extra>"), row=1, col=1)
    grey_shown = False
    for flat in order[::-1]:  # grey first, the coloured heads drawn on top
        layer, head = divmod(int(flat), n_heads)
        y = np.round(induction[:, layer, head], 3).tolist()
        if flat in coloured:
            colour = HEAD_COLOURS[coloured.index(flat)]
            trace = go.Scatter(x=steps, y=y, mode="lines+markers", name=f"L{layer} H{head}", marker={"size": 5},
                               line={"color": colour, "width": 2.5},
                               hovertemplate=f"L{layer} H{head}, step %{{x}}: %{{y:.2f}}<extra></extra>")
        else:
            trace = go.Scatter(x=steps, y=y, mode="lines", name="other heads", legendgroup="other",
                               showlegend=not grey_shown, line={"color": "#bbbbbb", "width": 1},
                               hovertemplate=f"L{layer} H{head}, step %{{x}}: %{{y:.2f}}<extra></extra>")
            grey_shown = True
        fig.add_trace(trace, row=2, col=1)
    if previous is not None:
        if len(previous) != len(steps):
            raise InputError(f"give one previous-token score per step: {len(steps)} steps, {len(previous)} scores.")
        fig.add_trace(go.Scatter(x=steps, y=np.round(np.asarray(previous, float), 3).tolist(), mode="lines",
                                 name=f"{previous_name} (previous-token score)",
                                 line={"color": "#000000", "width": 3, "dash": "dash"},
                                 hovertemplate="step %{x}: %{y:.2f}<extra>previous token</extra>"), row=2, col=1)
    if chance is not None:
        fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[round(float(chance), 3)] * 2, mode="lines",
                                 name="chance (even attention)", line={"color": "#777777", "width": 1.5, "dash": "dot"},
                                 hoverinfo="skip"), row=2, col=1)
    fig.update_yaxes(title_text="nats / char", automargin=True, gridcolor="#e5e5e5", row=1, col=1)
    fig.update_yaxes(title_text="score", range=[0, 1], automargin=True, gridcolor="#e5e5e5", row=2, col=1)
    fig.update_xaxes(automargin=True, gridcolor="#e5e5e5")
    fig.update_xaxes(title_text="training step", row=2, col=1)
    top = title_space(title_lines(title)) + 22
    fig.update_layout(
        title=title_layout(title, 560), height=560, plot_bgcolor="white", legend=LEGEND_BELOW,
        margin={"t": top, "l": 10, "r": 10, "b": 10},
        meta={"alt": f"Two panels over the training steps: the validation loss on top; below, the induction score "
                     f"of each of the {n_layers * n_heads} heads (the {len(coloured)} highest in colour, the others "
                     "grey), measured on repeated random characters at each evaluation"
                     + (f", and, dashed in black, the previous-token score of {previous_name}" if previous is not None
                        else "") + "."},
    )
    return fig


def position_loss_curve(losses: Sequence[float], title: str = "Loss at each position of a window",
                        alt: str | None = None) -> go.Figure:
    """The mean loss at each position 0..T-1 of the same windows: does more context help?"""
    losses = np.asarray(losses, dtype=float)
    if losses.ndim != 1 or losses.size < 2:
        raise InputError("give one mean loss per position (at least two positions).")
    fig = go.Figure(go.Scatter(x=list(range(losses.size)), y=np.round(losses, 3).tolist(), mode="lines+markers",
                               marker={"size": 4}, line={"color": HEAD_COLOURS[0], "width": 2}, name="loss",
                               hovertemplate="position %{x}: %{y:.3f}<extra></extra>"))
    top = title_space(title_lines(title))
    fig.update_layout(
        title=title_layout(title, 360), height=360, plot_bgcolor="white", showlegend=False,
        margin={"t": top + 4, "l": 10, "r": 10, "b": 10},
        xaxis={"title": {"text": "position (characters of context − 1)"}, "automargin": True,
               "gridcolor": "#e5e5e5"},
        yaxis={"title": {"text": "loss (nats / char)"}, "automargin": True, "gridcolor": "#e5e5e5"},
        meta={"alt": alt or f"{title}: the mean next-character loss at each of {losses.size} positions of the same "
                            "windows of unseen text, from the first position (no context) to the last."},
    )
    return fig


# ------------------------------------------------------------------ measurements


def sample_stats(text: str, known_words: set[str]) -> dict[str, float]:
    """A generated text measured: share of its words found in ``known_words``, share of repeated words,
    and the number of distinct characters."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, not {type(text).__name__}.")
    words = re.findall(r"[a-z']+", text.lower())
    words = [w.strip("'") for w in words if w.strip("'")]
    real = sum(w in known_words for w in words) / len(words) if words else 0.0
    repeated = 1 - len(set(words)) / len(words) if words else 0.0
    return {"real words": real, "repeated words": repeated, "distinct characters": len(set(text)),
            "words": len(words)}


def words_of(text: str) -> set[str]:
    """The distinct lower-case words of a text (letters and apostrophes), as :func:`sample_stats` counts them."""
    return {w.strip("'") for w in re.findall(r"[a-z']+", text.lower()) if w.strip("'")}


def loss_bump(steps: Sequence[int], val_loss: Sequence[float], from_step: int, to_step: int,
              neighbours: int = NEIGHBOURS, factor: float = BUMP) -> dict:
    """Did the validation loss fall faster between ``from_step`` and ``to_step`` than around it?

    Compares the mean fall per interval inside that stretch with the median fall of the
    ``neighbours`` intervals just before it and just after it (not the whole run's average, which
    early training dominates). A bump: at least ``factor`` times faster.
    """
    steps = [int(s) for s in steps]
    loss = np.asarray(val_loss, dtype=float)
    if len(steps) != len(loss) or len(steps) < 2:
        raise InputError("give one validation loss per evaluation step (at least two).")
    a = int(np.searchsorted(steps, from_step)) if from_step >= steps[0] else 0
    b = min(int(np.searchsorted(steps, to_step)), len(steps) - 1)
    falls = -np.diff(loss)  # fall in each interval between two evaluations
    inside = falls[a:b] if b > a else falls[max(b - 1, 0):b]
    around = np.concatenate([falls[max(a - neighbours, 0):a], falls[b:b + neighbours]])
    rate = float(inside.mean()) if inside.size else 0.0
    usual = float(np.median(around)) if around.size else float("nan")
    bump = bool(inside.size and around.size and rate > 0 and rate > factor * max(usual, 0.0))
    return {"fall_per_interval": rate, "usual_fall": usual, "intervals_compared": int(around.size),
            "ratio": rate / usual if usual > 0 else float("inf") if rate > 0 else 0.0, "bump": bump}


def find_phase_change(steps: Sequence[int], scores: np.ndarray, val_loss: Sequence[float],
                      minimum: float = INDUCTION_HEAD, sudden_share: float = SUDDEN_SHARE,
                      rise: tuple[float, float] = RISE, run_steps: int | None = None) -> dict:
    """Did a head appear suddenly? Decided from the measurements only.

    ``scores`` is (evaluations, layers, heads), e.g. every head's induction score. Takes the head
    with the highest final score. It is such a head if that score is at least ``minimum``. Its
    rise runs from the last evaluation below ``rise[0]`` of the final score to the first one at
    ``rise[1]`` or more (10 % → 90 %); measured between evaluations, this is an upper bound, so
    sparse evaluations can only make a rise look slower, never faster. It is sudden if the rise
    takes at most ``sudden_share`` of the run's steps (``run_steps``, by default the last step).
    A phase change: a head that rose suddenly. Also returns the scores and validation losses at
    both ends of the rise and :func:`loss_bump`'s verdict on the loss.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 3 or scores.shape[0] != len(steps) or len(val_loss) != len(steps) or len(steps) < 1:
        raise InputError("give one (layers, heads) table of scores and one validation loss per evaluation step.")
    steps = [int(s) for s in steps]
    run_steps = run_steps or steps[-1]
    layer, head = divmod(int(np.argmax(scores[-1])), scores.shape[2])
    curve = scores[:, layer, head]
    final = float(curve[-1])
    low, high = rise[0] * final, rise[1] * final
    below = np.flatnonzero(curve < low)
    reached = np.flatnonzero(curve >= high)
    end = int(reached[0]) if reached.size else len(curve) - 1
    below = below[below < end]
    start = int(below[-1]) if below.size else None  # None: already above 10 % at the first evaluation
    from_step = steps[start] if start is not None else 0
    to_step = steps[end]
    rise_steps = to_step - from_step
    result = {"layer": layer, "head": head, "final": final, "evaluations": len(steps),
              "interval": int(np.diff(steps).max()) if len(steps) > 1 else steps[0],
              "from_step": from_step, "to_step": to_step, "rise_steps": rise_steps,
              "rise_share": rise_steps / run_steps if run_steps else 1.0, "run_steps": run_steps,
              "score_before": float(curve[start]) if start is not None else float("nan"),
              "score_after": float(curve[end]),
              "loss_before": float(val_loss[start]) if start is not None else float("nan"),
              "loss_after": float(val_loss[end])}
    result["is_head"] = result["is_induction_head"] = final >= minimum
    result["sudden"] = bool(final > 0 and start is not None and result["rise_share"] <= sudden_share)
    result["phase_change"] = bool(result["is_head"] and result["sudden"])
    result.update({f"loss_{k}": v for k, v in loss_bump(steps, val_loss, from_step, to_step).items()}
                  if len(steps) > 1 else {"loss_bump": False})
    return result
