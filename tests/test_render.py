import json
import os
import subprocess
import sys

import plotly.graph_objects as go
import plotly.io as pio

from attnlab import render

PROBE = "import attnlab, plotly.io as pio; print(pio.renderers.default)"


def _default_renderer(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != render.BOOK_BUILD_ENV}
    if env_value is not None:
        env[render.BOOK_BUILD_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_book_renderer_only_inside_a_build():
    assert _default_renderer("1") == render.BOOK_RENDERER
    assert _default_renderer(None) != render.BOOK_RENDERER


def test_book_renderer_emits_a_div_without_plotly_js():
    fig = go.Figure(go.Heatmap(z=[[0.25, 0.75]]), layout={"meta": {"alt": 'a "quoted" <alt>'}})
    bundle = pio.renderers[render.BOOK_RENDERER].to_mimebundle(fig.to_dict())
    html = bundle["text/html"]
    assert list(bundle) == ["text/html"]
    assert "Plotly.newPlot" in html and "plotly-graph-div" in html
    assert "<script src" not in html and "cdn" not in html.lower()
    assert len(html) < 20_000  # plotly.js itself (megabytes) is not inlined
    assert 'aria-label="a &quot;quoted&quot; &lt;alt&gt;"' in html


def test_standalone_html_waits_for_plotly_before_drawing():
    fig = go.Figure(go.Bar(y=[1, 2]))
    html = render.standalone_html(fig, "https://example.test/plotly.js")
    assert "script.onload = draw" in html and "if (window.Plotly)" in html
    figure_json = html.split("var figure = ", 1)[1].split(";\n", 1)[0]
    assert json.loads(figure_json)["data"][0]["type"] == "bar"


def test_progress_bar_in_a_build_prints_its_final_state_once(monkeypatch, capsys):
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    assert list(render.progress(range(5), desc="training")) == [0, 1, 2, 3, 4]
    printed = capsys.readouterr()
    assert printed.out.count("\n") == 1 and "training: 100%" in printed.out and "5/5" in printed.out
    assert "\r" not in printed.out + printed.err  # no intermediate states left on the page
    assert list(render.progress(range(2), disable=True)) == [0, 1] and capsys.readouterr().out == ""


def test_progress_bar_outside_a_build_is_tqdm(monkeypatch, capsys):
    monkeypatch.delenv(render.BOOK_BUILD_ENV, raising=False)
    assert list(render.progress(range(3), desc="steps")) == [0, 1, 2]
    assert "steps" in capsys.readouterr().err  # tqdm's own bar (a widget in Jupyter)


def test_a_loop_that_stops_early_prints_its_bar_when_closed(monkeypatch, capsys):
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    bar = render.progress(range(10), desc="budget")
    for step in bar:
        bar.set_postfix(loss=1.0)
        if step == 3:
            break
    assert capsys.readouterr().out == ""  # nothing while it runs
    bar.close()
    bar.close()  # twice is harmless
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "/10" in printed and "loss=1" in printed
