"""The live explorer for Jupyter, Colab and VS Code: ``explore()`` on any sentence and model.

Rendering path (see :mod:`attnlab.widgets`): only core ipywidgets that exist in ipywidgets
7.7 (Colab) and 8, and figures drawn into an ``Output``, as HTML that waits for plotly.js in
Colab and with Plotly's own renderer elsewhere. No ``FigureWidget``, no third-party widget.
The model runs again only when the text or the model changes; layer, head, view and
temperature only redraw from the cached attention record.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import display

from attnlab import render
from attnlab.errors import AttnlabError, InputError
from attnlab.extraction import attend, check_layer_head, head_internals
from attnlab.figures import attention_heatmap, attention_steps, head_view, model_view
from attnlab.models import SUGGESTED_HUB_MODELS, load
from attnlab.patterns import find_heads
from attnlab.static_explorer import EXAMPLES
from attnlab.widgets import show_figure, show_frozen

VIEWS = ["one head", "head view", "all heads", "step by step"]
OWN_TEXT = "(type your own below)"


class LiveExplorer:
    """Controls, a message line and a figure; ``widget`` is what is displayed."""

    def __init__(self, model: str = "minilm", text: str | None = None, lab: str | None = None, *,
                 layer: int | None = None, head: int | None = None, view: str | None = None):
        if not isinstance(model, str):
            raise InputError(f"model must be a model name such as 'minilm', not {type(model).__name__}.")
        if text is not None and not isinstance(text, str):
            raise InputError(f"text must be a sentence (a string), not {type(text).__name__}.")
        if view is not None and view not in VIEWS:
            raise InputError(f"Unknown view {view!r}: choose one of {', '.join(VIEWS)}.")
        first = text or next(iter(EXAMPLES.values()))
        self.example = widgets.Dropdown(options=[OWN_TEXT, *EXAMPLES], value=OWN_TEXT if text else next(iter(EXAMPLES)),
                                        description="Example")
        self.text = widgets.Textarea(value=first, description="Text", continuous_update=False,
                                     layout=widgets.Layout(width="95%"))
        self.model_name = widgets.Combobox(value=model, options=["minilm", *SUGGESTED_HUB_MODELS], ensure_option=False,
                                           description="Model", continuous_update=False)
        self.layer = widgets.IntSlider(value=0, min=0, max=0, description="Layer", continuous_update=False)
        self.head = widgets.IntSlider(value=0, min=0, max=0, description="Head", continuous_update=False)
        self.view = widgets.ToggleButtons(options=VIEWS, value=VIEWS[0], description="View")
        self.query = widgets.Dropdown(options=[("", 0)], description="Query")
        self.temperature = widgets.FloatSlider(value=1.0, min=0.1, max=4.0, step=0.1, description="Temperature",
                                               continuous_update=False)
        self.message = widgets.HTML()
        self.patterns = widgets.HBox()
        self.output = widgets.Output()
        self.lab = lab
        self.model = None
        self.record = None
        self.model_runs = 0  # how often the model actually ran (tests and benchmarks read it)
        self.widget = widgets.VBox([
            widgets.HBox([self.example, self.model_name]), self.text,
            widgets.HBox([self.layer, self.head]), self.view, widgets.HBox([self.query, self.temperature]),
            self.patterns, self.message, self.output,
        ])
        if self._load_model() and (layer is not None or head is not None):
            check_layer_head(layer or 0, head or 0, self.model.n_layers, self.model.n_heads, self.model.name)
        for control, value in ((self.layer, layer), (self.head, head), (self.view, view)):
            if value is not None:
                control.value = value  # before the first drawing, and before any control is observed
        self._run_model()
        self.example.observe(self._on_example, names="value")
        self.text.observe(lambda _: self._run_model(), names="value")
        self.model_name.observe(lambda _: self._load_model() and self._run_model(), names="value")
        for control in (self.layer, self.head, self.view, self.query, self.temperature):
            control.observe(lambda _: self.redraw(), names="value")

    # ------------------------------------------------------------ model and text

    def _say(self, text: str, problem: bool = False) -> None:
        colour = "#b3261e" if problem else "#3c4043"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>' if text else ""

    def _load_model(self) -> bool:
        try:
            model = load(self.model_name.value)
        except AttnlabError as error:
            self._say(str(error), problem=True)
            return False
        self.model = model
        self.layer.max, self.head.max = model.n_layers - 1, model.n_heads - 1
        self._suggest_heads()
        return True

    def _suggest_heads(self) -> None:
        buttons = []
        try:
            found = find_heads(self.model)
        except AttnlabError:
            found = {}
        for pattern, heads in found.items():
            best = heads[0]
            if best.score < 0.3:
                continue
            button = widgets.Button(description=f"L{best.layer} H{best.head}: {pattern}", tooltip=best.describe(),
                                    layout=widgets.Layout(width="auto"))
            button.on_click(lambda _b, layer=best.layer, head=best.head: self.jump(layer, head))
            buttons.append(button)
        self.patterns.children = buttons

    def jump(self, layer: int, head: int) -> None:
        """Show one head (used by the pattern buttons)."""
        self.layer.value, self.head.value = layer, head

    def _on_example(self, change) -> None:
        if change["new"] != OWN_TEXT:
            self.text.value = EXAMPLES[change["new"]]

    def _run_model(self) -> None:
        if self.model is None:
            return
        try:
            record = attend(self.text.value, self.model)
        except AttnlabError as error:
            self._say(str(error), problem=True)
            return
        if record is not self.record:
            self.model_runs += 1
        self.record = record
        self.query.options = [(token, i) for i, token in enumerate(record.tokens)]
        self._say(" ".join(record.notes))
        self.redraw()

    # ------------------------------------------------------------ drawing

    def figure(self):
        """The figure for the current choices (a pure function of the record and the controls)."""
        record, layer, head = self.record, self.layer.value, self.head.value
        view = self.view.value
        title = f"{record.model_name}: layer {layer}, head {head}"
        if view == "one head":
            mask = None
            if record.causal:
                import numpy as np

                mask = np.tri(len(record.tokens), dtype=bool)
            return attention_heatmap(record.head(layer, head), record.tokens, title=title, mask=mask)
        if view == "head view":
            return head_view(record.attentions[layer, [head]], record.tokens, heads=[0], title=title)
        if view == "all heads":
            return model_view(record.attentions, title=f"{record.model_name}: every head")
        inside = head_internals(record.text, self.model, layer, head)
        return attention_steps(inside.q, inside.k, inside.v, record.tokens, self.query.value or 0,
                               temperature=self.temperature.value, causal=record.causal, title=title)

    def redraw(self) -> None:
        """Draw the current choices into the output area."""
        if self.record is None:
            return
        try:
            figure = self.figure()
        except AttnlabError as error:
            self._say(str(error), problem=True)
            return
        self.last_figure = figure
        with self.output:
            self.output.clear_output(wait=True)
            show_figure(figure)


def explore(model: str = "minilm", text: str | None = None, lab: str | None = None, *, layer: int | None = None,
            head: int | None = None, view: str | None = None) -> LiveExplorer:
    """Show the live attention explorer; returns it, so its controls can be set from code.

    ``layer``, ``head`` and ``view`` (one of ``VIEWS``) choose what it opens on.
    """
    explorer = LiveExplorer(model, text, lab, layer=layer, head=head, view=view)
    if render.building_book():
        show_frozen([[explorer.example, explorer.model_name], [explorer.text], [explorer.layer, explorer.head],
                     [explorer.view]], explorer.last_figure, lab)
    else:
        display(explorer.widget)
    return explorer
