"""The built site as a reader sees it: headless Chromium, network blocked except loopback."""

import numpy as np
import pytest

from attnlab.toy import toy_attention

pytestmark = [pytest.mark.site, pytest.mark.browser]

WELCOME = "book/00-welcome.html"
LAB = "notebooks/00-welcome-lab.html"
READ_FIGURE = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  // _fullData holds the decoded values (gd.data may keep Plotly's base64 typed-array form).
  return {z: gd._fullData[0].z.map(row => Array.from(row)), title: gd.layout.title.text,
          cells: gd.querySelectorAll('.heatmaplayer image, .heatmaplayer .hm').length};
}"""


def test_pilot_figure_is_drawn_and_reacts_to_its_menu(visit):
    welcome = visit(WELCOME)
    page = welcome.page
    page.wait_for_selector(".js-plotly-plot .heatmaplayer", state="attached", timeout=15_000)
    drawn = page.evaluate(READ_FIGURE)
    assert drawn["cells"] >= 1, "the heatmap layer is empty"
    np.testing.assert_allclose(np.array(drawn["z"], dtype=float), toy_attention(1.0), atol=1e-9)

    page.locator(".js-plotly-plot").scroll_into_view_if_needed()
    page.locator(".updatemenu-header-group").first.click()
    page.locator(".updatemenu-item-text", has_text="temperature 0.5").first.click()
    page.wait_for_function("() => document.querySelector('.js-plotly-plot').layout.title.text.includes('0.5')")
    after = page.evaluate(READ_FIGURE)
    np.testing.assert_allclose(np.array(after["z"], dtype=float), toy_attention(0.5), atol=1e-9)
    welcome.screenshot("welcome-figure.png", full_page=False)
    welcome.assert_clean()


def test_math_is_rendered_by_the_local_mathjax(visit):
    welcome = visit(WELCOME)
    welcome.page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
    assert welcome.page.locator("mjx-container").count() >= 1
    # MathJax turned the TeX into glyphs: no raw TeX source left in the display.
    assert "\\operatorname" not in welcome.page.inner_text("main")
    welcome.assert_clean()


def test_lab_page_shows_frozen_controls_and_a_live_figure(visit):
    lab = visit(LAB)
    page = lab.page
    page.wait_for_selector(".attnlab-static-notice", timeout=15_000)
    notice = page.locator(".attnlab-static-notice")
    assert "need a running Python kernel" in notice.inner_text()
    assert notice.locator("a").get_attribute("href").startswith("https://colab.research.google.com/github/")
    page.wait_for_selector(".js-plotly-plot .heatmaplayer", state="attached", timeout=15_000)
    # The controls are text: nothing on the page looks draggable, and no widget manager is loaded.
    assert page.locator(".attnlab-frozen-controls dt", has_text="temperature").count() == 1
    assert page.locator(".widget-slider, input[type=range]").count() == 0
    assert page.evaluate("() => [...document.scripts].every(s => !s.src.includes('html-manager'))")
    notice.scroll_into_view_if_needed()
    lab.screenshot("lab-explorer.png")
    lab.assert_clean()
