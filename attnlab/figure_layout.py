"""Layout for every width: the rules that make attnlab's figures read on a phone and a desktop.

Shared by the figure builders (:mod:`attnlab.figures`): titles wrapped below the band of
plotly's mode bar, menus in a row of their own, legends below the plot, and labels of a
scatter placed where they overlap nothing (tests/test_figure_layout.py checks the pages).
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

import numpy as np


#: plotly's mode bar (on hover, and on phones on every tap) is 22 px of buttons 2 px below the
#: figure's top right corner, up to ~270 px wide, more than half a phone's column: no text
#: goes in this band at the top of a figure.
MODEBAR_BAND = 30
TITLE_SIZE = 15
TITLE_LINE = 20  # px per title line at TITLE_SIZE
#: Characters per title line: at most ~300 px at TITLE_SIZE, inside a phone's column.
TITLE_CHARS = 38
MENU_ROW = 34  # px of a row of buttons or of a closed dropdown
LABEL_CHAR = 7.2  # px per character of 12 px text, a little more than most fonts need
#: A horizontal legend at the bottom of the figure: the bottom margin grows to fit it, in
#: as many rows as the width needs, below the x axis's tick labels and title.
LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "xref": "container",
                "y": 0, "yanchor": "bottom", "yref": "container"}


def wrap(text: str, width: int = TITLE_CHARS) -> str:
    """``text`` HTML-escaped and broken into lines of at most ``width`` characters (a longer word
    keeps a line); a newline in ``text`` always breaks."""
    lines = [line for part in str(text).split("\n")
             for line in textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False) or [""]]
    return "<br>".join(html.escape(line) for line in lines)


def choice_heading(title: str, choice: str) -> str:
    """``title · choice``, on one line if it fits a phone, else the choice on a line of its own."""
    joined = f"{title} · {choice}"
    return joined if len(joined) <= TITLE_CHARS else f"{title} ·\n{choice}"


def title_lines(*variants: str) -> int:
    """How many lines the longest of these titles takes once wrapped."""
    return max(wrap(text).count("<br>") + 1 for text in variants)


def title_space(lines: int) -> int:
    """px from the top of a figure to below its title of ``lines`` lines."""
    return MODEBAR_BAND + TITLE_LINE * lines + 6


def title_layout(text: str, height: float, lines: int = 1) -> dict:
    """A figure title at the top left, below the mode bar's band, wrapped to fit a phone.

    ``height`` is the figure's; ``lines`` the most lines any text of this title will take
    (menus change it).
    """
    # plotly lifts a title of several lines by 0.7 em more than a title of one line
    # (and ignores pad.t for it): place its top by its y.
    below = MODEBAR_BAND + 2 + (0.7 * TITLE_SIZE if max(lines, title_lines(text)) > 1 else 0)
    return {"text": wrap(text), "font": {"size": TITLE_SIZE}, "x": 0, "xref": "container", "xanchor": "left",
            "pad": {"l": 10}, "y": 1 - below / height, "yref": "container", "yanchor": "top"}


def menu_row(menu: dict, label: str | None, above_plot: int) -> tuple[dict, list[dict], int]:
    """Place ``menu`` in a row of its own between the title and the plot, left-aligned with the plot.

    ``above_plot`` px are left free between the menu and the plot (for subplot titles).
    A short ``label`` goes left of the menu, a longer one on a line above it. Returns the
    menu, its label's annotations and the height in px of the row.
    """
    annotations, height, shift = [], MENU_ROW, 0
    if label:
        inline = len(label) <= 10
        shift = int(LABEL_CHAR * len(label)) + 10 if inline else 0
        annotations.append({"text": html.escape(label), "showarrow": False, "x": 0, "xref": "paper", "xanchor": "left",
                            "y": 1, "yref": "paper", "yanchor": "middle" if inline else "bottom",
                            "yshift": above_plot + (MENU_ROW // 2 - 2 if inline else MENU_ROW - 2)})
        height += 0 if inline else 18
    menu = {**menu, "x": 0, "xanchor": "left", "y": 1, "yanchor": "bottom",
            "pad": {"b": above_plot, "l": shift, "t": 0, "r": 0}}
    return menu, annotations, height


# ------------------------------------------------------------------ labels of a scatter


#: Where a point's label may go, in order of preference, and which way each moves the label's box.
LABEL_POSITIONS = {"top center": (0, -1), "bottom center": (0, 1), "middle right": (1, 0), "middle left": (-1, 0),
                   "top right": (1, -1), "top left": (-1, -1), "bottom right": (1, 1), "bottom left": (-1, 1)}
#: Plot areas (px) a 520 px tall scatter gets in a phone's column and in a desktop's.
SCATTER_AREAS = ((280, 330), (600, 340))


def place_labels(points: np.ndarray, words: Sequence[str], marker: float = 11,
                 areas: Sequence[tuple[float, float]] = SCATTER_AREAS) -> tuple[list[str], list[float], list[float]]:
    """A textposition for each point's label, so that labels overlap neither each other nor points.

    Each label is a box of its word's estimated size at one of the eight positions around its
    point. The cost of a placement is the area (px²) where labels overlap each other, and
    less where they cover markers or stick out of the plot, summed over the plot ``areas``
    (a phone's and a desktop's): minimised greedily, then by moving one label, or two
    neighbours together, while that helps; the best of a few starts. The axes' ranges are
    then widened on each side until every label lies inside them, and the labels placed
    again. Returns the positions and the x and y ranges.
    """
    points = np.asarray(points, dtype=float)
    n = len(points)
    sizes = np.array([[LABEL_CHAR * len(str(w)) + 4, 17.0] for w in words])  # (n, 2): width, height in px
    moves = np.array(list(LABEL_POSITIONS.values()), dtype=float)  # (8, 2), screen y downwards
    radius, gap = marker / 2, 2.0
    # Box centres relative to their points, in px: (n, 8, 2). Diagonal labels start at the point.
    offsets = moves[None] * (radius + gap + sizes[:, None] / 2)
    offsets[:, :, 0] = np.where(moves[None, :, 1] != 0, moves[None, :, 0] * (sizes[:, None, 0] / 2 + 1), offsets[:, :, 0])
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)

    def ranges(pad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return low - pad[:, 0] * span, high + pad[:, 1] * span

    def layouts(pad: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per plot area: the points in px, every label position's box centre, the area's size."""
        lo, hi = ranges(pad)
        out = []
        for width, height in areas:
            px = (points - lo) / (hi - lo) * [width, height]
            px[:, 1] = height - px[:, 1]
            out.append((px, px[:, None] + offsets, np.array([width, height], dtype=float)))
        return out

    def tables(where) -> tuple[np.ndarray, np.ndarray]:
        """Costs in px² summed over the areas: of each label's own positions (n, 8) (markers it
        covers, what sticks out of the plot, a slight preference for the earlier positions), and
        of each pair of labels' positions (n, 8, n, 8), the area of their overlap."""
        own, pair = np.tile(0.01 * np.arange(len(moves)), (n, 1)), np.zeros((n, len(moves), n, len(moves)))
        half = sizes / 2
        for px, centres, area in where:
            reach = half[:, None, None, None] + half[None, None, :, None]  # (n, 1, n, 1, 2)
            d = np.maximum(0, reach - np.abs(centres[:, :, None, None] - centres[None, None]))
            pair += d[..., 0] * d[..., 1]
            d = np.maximum(0, half[:, None, None] + radius - np.abs(centres[:, :, None] - px[None, None]))
            own += 0.5 * np.sum(d[..., 0] * d[..., 1], axis=2)
            own += 3 * np.sum(np.maximum(0, half[:, None] - centres) + np.maximum(0, centres + half[:, None] - area), axis=2)
        pair[np.arange(n), :, np.arange(n), :] = 0
        return own, pair

    def arrange(where, rng: np.random.Generator) -> np.ndarray:
        """Greedy (the most crowded point first, then random orders), sweeps that move one label,
        then moves of two overlapping neighbours at once; the best of a few starts."""
        own, pair = tables(where)
        px = where[0][0]
        distance = np.linalg.norm(px[:, None] - px[None], axis=-1)  # (n, n), in the first area's px
        crowd, near = np.sum(distance < 80, axis=1), distance < 100
        everyone = np.arange(n)

        def against(i: int, placed: np.ndarray) -> np.ndarray:  # (8,): label i's cost at each position
            others = np.flatnonzero((placed >= 0) & (everyone != i))
            return own[i] + pair[i][:, others, placed[others]].sum(axis=1)

        best, best_cost = None, np.inf
        for start in range(6):
            order = np.argsort(-crowd, kind="stable") if start == 0 else rng.permutation(n)
            placed = np.full(n, -1)
            for i in order:
                placed[i] = int(np.argmin(against(i, placed)))
            for _sweep in range(6):
                before = placed.copy()
                for i in range(n):
                    placed[i] = int(np.argmin(against(i, placed)))
                # A label that still overlaps another may need a neighbour to make room: move both.
                stuck = [i for i in range(n) if against(i, placed)[placed[i]] - own[i, placed[i]] > 1]
                for i, j in ((i, j) for i in stuck for j in np.flatnonzero(near[i]) if j != i):
                    others = np.flatnonzero((everyone != i) & (everyone != j))
                    joint = (own[i][:, None] + own[j][None] + pair[i, :, j, :]
                             + pair[i][:, others, placed[others]].sum(axis=1)[:, None]
                             + pair[j][:, others, placed[others]].sum(axis=1)[None])
                    placed[i], placed[j] = np.unravel_index(int(np.argmin(joint)), joint.shape)
                if np.array_equal(before, placed):
                    break
            total = (own[everyone, placed].sum()
                     + pair[everyone[:, None], placed[:, None], everyone[None], placed[None]].sum() / 2)
            if total < best_cost:
                best, best_cost = placed.copy(), total
        return best

    def overflow(where, placed: np.ndarray) -> np.ndarray:
        """How far labels stick out of the plot: [[left, right], [bottom, top]], as fractions of its size."""
        need = np.zeros((2, 2))
        for _px, centres, area in where:
            c, half = centres[np.arange(n), placed], sizes / 2
            over_low = np.max(half - c, axis=0) / area  # left, top (screen)
            over_high = np.max(c + half - area, axis=0) / area  # right, bottom (screen)
            need = np.maximum(need, [[over_low[0], over_high[0]], [over_high[1], over_low[1]]])
        return need

    def widen(pad: np.ndarray, need: np.ndarray) -> np.ndarray:
        return pad + np.maximum(need, 0) * (1 + pad.sum(axis=1, keepdims=True)) * 1.3 + 0.005 * (need > 0.002)

    rng = np.random.default_rng(0)  # the same figure for the same data
    pad = np.full((2, 2), 0.06)  # [x: left, right], [y: bottom, top], as fractions of the points' span
    for _ in range(8):  # widen each side of the ranges until every label lies inside, at every size
        where = layouts(pad)
        placed = arrange(where, rng)
        need = overflow(where, placed)
        if np.all(need <= 0.002):
            break
        pad = widen(pad, need)
    lo, hi = ranges(pad)
    chosen = [int(k) for k in placed]
    names = list(LABEL_POSITIONS)
    return [names[k] for k in chosen], [float(v) for v in (lo[0], hi[0])], [float(v) for v in (lo[1], hi[1])]
