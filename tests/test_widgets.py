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
    shown = []
    monkeypatch.setattr("attnlab.widgets.display", shown.append)
    controls = _controls()
    explorer(lambda temperature: attention_heatmap(toy_attention(temperature), TOKENS), controls, lab="lab.ipynb")
    assert controls["temperature"].disabled
    snapshot, figure = shown  # plain HTML, then the figure: no widget is drawn on the page
    assert "need a running Python kernel" in snapshot.data
    assert 'href="https://colab.example/notebooks/lab.ipynb"' in snapshot.data
    assert '<span class="attnlab-frozen-value">1</span>' in snapshot.data and "0.1 to 4" in snapshot.data
    assert figure.layout.title.text == "Attention weights"


def test_frozen_controls_read_as_text_and_are_escaped():
    from attnlab.widgets import frozen_html

    rows = [[widgets.Dropdown(options=[("a <b>", 0), ("c", 1)], value=1, description="pick"),
             widgets.Text(value="<script>alert(1)</script>", description="sentence")],
            [widgets.Checkbox(value=True, description="causal"), widgets.IntSlider(value=3, min=0, max=5)]]
    shown = frozen_html(rows)
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "a &lt;b&gt;" in shown
    assert '<dt>pick</dt><dd><span class="attnlab-frozen-value">c</span>' in shown
    assert "<dt>causal</dt><dd><span class=\"attnlab-frozen-value\">on</span>" in shown
    assert "<dt>value</dt>" in shown and "0 to 5" in shown  # a control without a description


def test_notice_escapes_the_link(monkeypatch):
    monkeypatch.setenv(COLAB_PREFIX_ENV, 'https://x/"><script>')
    assert "<script>" not in static_notice("lab.ipynb")


def test_live_output_shows_a_frozen_snapshot_on_the_static_site(monkeypatch, capsys):
    import ipywidgets

    from attnlab import render, widgets as course_widgets

    shown = []
    controls = {"word": ipywidgets.Text(value="<b>hi</b>", description="Word"),
                "count": ipywidgets.IntSlider(value=2, min=1, max=5, description="Count")}
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    displayed = []
    monkeypatch.setattr(course_widgets, "display", lambda item: displayed.append(item))
    box = course_widgets.live_output(lambda word, count: shown.append((word, count)), controls, lab="x-lab.ipynb",
                                     rows=[["word"], ["count"]])
    assert shown == [("<b>hi</b>", 2)]  # drawn once, for the values listed
    notice = displayed[0].data
    assert "attnlab-static-notice" in notice and "&lt;b&gt;hi&lt;/b&gt;" in notice and "<b>hi</b>" not in notice
    assert all(control.disabled for control in controls.values()) and len(box.children) == 2
