import ipywidgets as widgets

from attnlab import render
from attnlab.figures import attention_heatmap
from attnlab.toy import TOKENS, toy_attention
from attnlab.widgets import COLAB_PREFIX_ENV, explorer, static_notice


def _controls():
    return {"temperature": widgets.FloatSlider(value=1.0, min=0.1, max=4.0)}


def test_live_explorer_redraws_when_a_value_is_set(monkeypatch):
    monkeypatch.delenv(render.BOOK_BUILD_ENV, raising=False)
    drawn = []

    def draw(temperature):
        drawn.append(temperature)
        return attention_heatmap(toy_attention(temperature), TOKENS)

    controls = _controls()
    box = explorer(draw, controls)
    controls["temperature"].value = 0.5
    assert drawn == [1.0, 0.5]
    assert not controls["temperature"].disabled
    assert isinstance(box.children[-1], widgets.Output)


def test_static_explorer_freezes_controls_and_links_to_colab(monkeypatch):
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    monkeypatch.setenv(COLAB_PREFIX_ENV, "https://colab.example/notebooks/")
    controls = _controls()
    box = explorer(lambda temperature: attention_heatmap(toy_attention(temperature), TOKENS), controls, lab="lab.ipynb")
    assert controls["temperature"].disabled
    notice = box.children[0].value
    assert "need a running Python kernel" in notice
    assert 'href="https://colab.example/notebooks/lab.ipynb"' in notice


def test_notice_escapes_the_link(monkeypatch):
    monkeypatch.setenv(COLAB_PREFIX_ENV, 'https://x/"><script>')
    assert "<script>" not in static_notice("lab.ipynb")
