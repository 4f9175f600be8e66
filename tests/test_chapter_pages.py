"""Every chapter and lab as a reader sees them: figures drawn and working in Chromium, offline."""

import re

import numpy as np
import pytest
import yaml

from attnlab.attention import softmax
from attnlab.extraction import head_internals
from tests.conftest import ROOT

pytestmark = [pytest.mark.site, pytest.mark.browser]

# Every numbered chapter and lab in the table of contents (the welcome page and its lab are checked elsewhere).
_TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
_FILES = [entry["file"] for part in _TOC["parts"] for chapter in part["chapters"]
          for entry in (chapter, *chapter.get("sections", []))]
CHAPTERS = [name for name in _FILES if re.fullmatch(r"book/(0[1-9]|[1-9]\d)-[\w-]+", name)]
LABS = [name for name in _FILES if re.fullmatch(r"notebooks/(0[1-9]|[1-9]\d)-[\w-]+-lab", name)]
DRAWN = "() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => g._fullData).length"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_figures_are_drawn_and_solutions_are_folded(visit, name):
    page_visit = visit(f"{name}.html")
    page = page_visit.page
    page.wait_for_function(f"() => ({DRAWN})() >= 1", timeout=15_000)
    page.wait_for_load_state("networkidle")
    figures = page.locator(".attnlab-figure")
    assert figures.count() >= 1 and page.evaluate(DRAWN) == page.locator(".js-plotly-plot").count()
    for index in range(figures.count()):  # every figure has alt text for screen readers
        assert len(figures.nth(index).get_attribute("aria-label")) > 20
    exercises = page.locator(".exercise")
    assert exercises.count() >= 3
    solution = page.locator(".solution").first
    assert solution.count() == 1 and not solution.locator("section p").first.is_visible()  # folded until asked
    assert page.locator("a.attnlab-colab, a[href^='https://colab.research.google.com/github/']").count() >= 1
    assert page.locator("#references, section:has(h2:text('References'))").count() >= 1
    page_visit.screenshot(name.split("/")[-1] + ".png", full_page=True)
    page_visit.assert_clean()


def test_chain_and_web_buttons_switch_the_reader(visit):
    page_visit = visit("book/01-why-transformers.html")
    page = page_visit.page
    page.wait_for_function(f"() => ({DRAWN})() >= 1", timeout=15_000)
    figure = page.locator(".js-plotly-plot").first
    figure.scroll_into_view_if_needed()
    figure.locator(".updatemenu-button", has_text="attention web").click()
    page.wait_for_function("() => document.querySelector('.js-plotly-plot').layout.title.text.includes('web')")
    visible = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(t => t.visible)")
    assert visible == [False, False, True, True, True]
    page_visit.assert_clean()


def test_step_by_step_explorer_follows_its_menu_and_slider(visit):
    head = head_internals("The cat sat on the mat because it was tired.", "minilm", layer=2, head=3)
    query = list(head.tokens).index("it")
    page_visit = visit("book/04-attention-from-scratch.html")
    page = page_visit.page
    page.wait_for_function(f"() => ({DRAWN})() >= 3", timeout=15_000)
    explorer = page.locator(".js-plotly-plot").nth(2)
    explorer.scroll_into_view_if_needed()
    read = ("(q) => { const gd = document.querySelectorAll('.js-plotly-plot')[2];"
            " const t = gd._fullData[4 * q + 2];"  # a hidden trace keeps no decoded data: read it only when shown
            " return {visible: gd.data[4 * q + 2].visible, x: t.visible ? Array.from(t.x) : null}; }")
    np.testing.assert_allclose(page.evaluate(read, 0)["x"], head.weights[0], atol=1e-5)  # temperature 1: the model's own
    explorer.locator(".updatemenu-header-group").click()
    explorer.locator(".updatemenu-item-text", has_text="it").first.click()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot')[2].layout.title.text.includes('“it”')")
    assert page.evaluate(read, query)["visible"] is True and page.evaluate(read, 0)["visible"] is False
    explorer.locator(".slider-rail-touch-rect").first.scroll_into_view_if_needed()
    page.wait_for_timeout(100)
    label = explorer.locator(".slider-group text", has_text="0.25").first.bounding_box()  # the step's label
    rail = explorer.locator(".slider-rail-touch-rect").first.bounding_box()
    page.mouse.click(label["x"] + label["width"] / 2, rail["y"] + rail["height"] / 2)  # the rail, above the label
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot')[2].layout.sliders[0].active === 0")
    page.wait_for_timeout(200)
    np.testing.assert_allclose(page.evaluate(read, query)["x"], softmax(head.scaled[query] / 0.25), atol=1e-5)
    page_visit.screenshot("step-by-step-explorer.png")
    page_visit.assert_clean()


@pytest.mark.parametrize("name", LABS)
def test_lab_page_shows_its_exercises_and_its_explorer(visit, name):
    page_visit = visit(f"{name}.html")
    page = page_visit.page
    if "explore(" in (ROOT / f"{name}.ipynb").read_text(encoding="utf-8"):  # a live explorer, frozen here
        page.wait_for_selector(".attnlab-static-notice", timeout=15_000)
        assert "Colab" in page.locator(".attnlab-static-notice").first.inner_text()
    else:  # its figures are plain Plotly figures, and they work here
        page.wait_for_function(f"() => ({DRAWN})() >= 1", timeout=15_000)
    solutions = page.locator("details:has(summary:text('Show a solution'))")
    assert solutions.count() >= 1 and solutions.first.get_attribute("open") is None  # solutions start folded
    assert "not written yet" in page.inner_text("main")  # the unsolved checks speak, kindly
    page_visit.assert_clean()
