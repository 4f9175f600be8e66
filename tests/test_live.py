"""The live explorer, driven from code as a learner's clicks would drive it."""

import numpy as np
import pytest

from attnlab import render
from attnlab.extraction import attend
from attnlab.live import VIEWS, LiveExplorer, explore
from attnlab.static_explorer import EXAMPLES


@pytest.fixture
def explorer(monkeypatch):
    monkeypatch.delenv(render.BOOK_BUILD_ENV, raising=False)
    return LiveExplorer("minilm")


def _drawn_z(explorer):
    return np.array(explorer.last_figure.data[0].z, dtype=float)


def test_controls_are_sized_from_the_model(explorer):
    assert (explorer.layer.max, explorer.head.max) == (5, 11)
    assert any("previous token" in button.description for button in explorer.patterns.children)


def test_layer_and_head_redraw_without_running_the_model(explorer):
    runs = explorer.model_runs
    explorer.layer.value, explorer.head.value = 0, 2
    np.testing.assert_allclose(_drawn_z(explorer), attend(explorer.text.value, "minilm").head(0, 2), atol=1e-6)
    explorer.layer.value = 3
    np.testing.assert_allclose(_drawn_z(explorer), attend(explorer.text.value, "minilm").head(3, 2), atol=1e-6)
    assert explorer.model_runs == runs


def test_new_text_runs_the_model_once(explorer):
    runs = explorer.model_runs
    explorer.text.value = "Attention is all you need."
    assert explorer.model_runs == runs + 1
    assert explorer.query.options[1][0] == "attention"
    explorer.example.value = list(EXAMPLES)[1]
    assert explorer.text.value == EXAMPLES[list(EXAMPLES)[1]] and explorer.model_runs == runs + 2


def test_every_view_draws(explorer):
    for view in VIEWS:
        explorer.view.value = view
        assert explorer.last_figure.data, view
    explorer.query.value, explorer.temperature.value = 2, 0.5
    assert "T = 0.5" in explorer.last_figure.layout.annotations[2].text


def test_pattern_button_jumps_to_the_head(explorer):
    button = next(b for b in explorer.patterns.children if "previous token" in b.description)
    button.click()
    assert (explorer.layer.value, explorer.head.value) == (0, 2)


@pytest.mark.parametrize("text, message", [("   ", "Type a sentence first"), ("attention " * 1000, "cut to its first")])
def test_bad_text_gives_a_message_not_an_exception(explorer, text, message):
    explorer.text.value = text
    assert message in explorer.message.value


def test_hostile_text_and_unknown_model_are_escaped(explorer):
    explorer.text.value = "<script>alert(1)</script> <img src=x onerror=alert(2)>"
    assert all("<" not in label for label in explorer.last_figure.layout.xaxis.ticktext)
    explorer.model_name.value = "<b>nope</b>"
    assert "&lt;b&gt;nope&lt;/b&gt;" in explorer.message.value and "<b>nope" not in explorer.message.value
    assert explorer.model.name == "minilm"  # the previous model stays in use


def test_static_site_shows_a_frozen_snapshot(monkeypatch):
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    shown = []
    monkeypatch.setattr("attnlab.widgets.display", shown.append)
    explorer = explore("minilm", lab="10-lab.ipynb")
    explorer.layer.value = 4  # a later cell moves the live control: the page keeps what it drew
    snapshot, figure = shown
    assert '<dt>Layer</dt><dd><span class="attnlab-frozen-value">0</span>' in snapshot.data and "0 to 5" in snapshot.data
    assert explorer.layer.disabled and figure is not None


def test_it_opens_on_the_chosen_head_and_view(monkeypatch):
    monkeypatch.delenv(render.BOOK_BUILD_ENV, raising=False)
    opened = LiveExplorer("minilm", text="The cat sat on the mat.", layer=2, head=3, view="step by step")
    assert (opened.layer.value, opened.head.value, opened.view.value) == (2, 3, "step by step")
    assert opened.model_runs == 1 and len(opened.last_figure.data) == 4  # the step view's four panels


@pytest.mark.parametrize("options, message", [({"view": "sideways"}, "Unknown view"), ({"layer": 9}, "layer")])
def test_a_bad_opening_choice_gets_a_message(monkeypatch, options, message):
    from attnlab.errors import InputError

    monkeypatch.delenv(render.BOOK_BUILD_ENV, raising=False)
    with pytest.raises(InputError, match=message):
        LiveExplorer("minilm", **options)
