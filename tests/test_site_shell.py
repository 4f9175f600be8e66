"""The site around the text, as readers meet it on a phone, a tablet and a laptop, light and dark.

Every page of the book at 390, 800 and 1280 px: the navigation buttons open what they name,
nothing is wider than the screen, every display equation fits its column or scrolls visibly,
axe-core finds no serious or critical accessibility problem, and in dark mode the figures are dark.
"""

from __future__ import annotations

import gzip
from urllib.parse import unquote, urlparse

import pytest

from tests.conftest import ROOT, SCREENSHOTS, SITE, VIEWPORTS
from tests.test_site import toc_pages

pytestmark = [pytest.mark.site, pytest.mark.browser]

PAGES = toc_pages()
BYTE_BUDGET = 1_000_000  # per page, cold, gzipped: a phone on a weak network in a workshop room
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# Visible = rendered, not transparent, with some of it inside the window horizontally.
VISIBLE_JS = """(el) => {
  if (!el || !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) return false;
  const r = el.getBoundingClientRect();
  return r.width > 40 && r.height > 40 && r.right > 20 && r.left < window.innerWidth - 20;
}"""

READY_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  return true;
}"""

# Display equations: the math either fits its column, or a box around it scrolls sideways and
# says so visibly (a shadow at the cut edge; phones hide scrollbars until touched).
EQUATIONS_JS = """() => {
  const problems = [];
  for (const box of document.querySelectorAll('mjx-container[display="true"]')) {
    const math = box.querySelector('mjx-math') || box;
    const column = box.closest('article, main, .bd-article') || document.body;
    const width = math.getBoundingClientRect().width;
    const room = Math.min(box.parentElement.clientWidth, column.clientWidth);
    if (width <= room + 1) continue;
    let scroller = box;
    while (scroller && scroller !== column && !['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX))
      scroller = scroller.parentElement;
    const style = scroller && getComputedStyle(scroller);
    const scrolls = style && ['auto', 'scroll'].includes(style.overflowX) && scroller.scrollWidth > scroller.clientWidth;
    const shows = style && style.backgroundImage !== 'none' && style.scrollbarWidth !== 'none';
    if (!scrolls || !shows) problems.push(`${Math.round(width)} px of math in ${Math.round(room)} px: ` +
                                          box.textContent.slice(0, 60));
  }
  return problems;
}"""

# Tables: one wider than its column scrolls in its box, which says so in words.
TABLES_JS = """() => [...document.querySelectorAll('article table')].filter(table => {
  const box = table.parentElement;
  if (table.getBoundingClientRect().width <= box.clientWidth + 1) return false;
  const scrolls = ['auto', 'scroll'].includes(getComputedStyle(box).overflowX) && box.scrollWidth > box.clientWidth;
  const says = getComputedStyle(box, '::before').content.includes('sideways');
  return !(scrolls && says);
}).map(table => table.textContent.trim().slice(0, 60))"""

WIDEST_JS = """() => {
  const limit = window.innerWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.right > limit + 1 && r.width > 0 && el.checkVisibility() && !el.closest('[style*="overflow"], .highlight, pre, table, mjx-container, .js-plotly-plot, .attnlab-scroll'))
      wide.push(el.tagName.toLowerCase() + '.' + [...el.classList].join('.') + ' → ' + Math.round(r.right));
  }
  return {scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 5)};
}"""


def _wait_ready(page) -> None:
    page.evaluate(READY_JS)
    page.wait_for_timeout(150)  # the theme's own scripts settle the layout after load


def _visible_toggle(page, name: str):
    toggles = page.locator(f"button.{name}-toggle")
    for index in range(toggles.count()):
        if toggles.nth(index).is_visible():
            return toggles.nth(index)
    return None


def _shown(page, selector: str) -> bool:
    return page.evaluate(f"() => ({VISIBLE_JS})(document.querySelector({selector!r}))")


def _button_flips(page, side: str, target: str, what: str) -> bool:
    """Click the visible ``side`` toggle and check it shows or hides ``target``; True if it opened it.

    Where no toggle is visible, ``target`` must already be on screen."""
    toggle = _visible_toggle(page, side)
    before = _shown(page, target)
    if toggle is None:
        assert before, f"{what}: no way to reach it"
        return False
    toggle.click()
    page.wait_for_timeout(400)
    assert _shown(page, target) != before, f"{what}: the button did nothing"
    return not before


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def viewport(request):
    return VIEWPORTS[request.param]


@pytest.mark.parametrize("name", PAGES)
def test_page_fits_and_navigates(visit, name, viewport):
    page_visit = visit(f"{name}.html", viewport=viewport)
    page = page_visit.page
    _wait_ready(page)
    width = viewport[0]

    widest = page.evaluate(WIDEST_JS)
    assert widest["scroll"] <= width, f"{name} lays out {widest['scroll']} px wide on a {width} px screen: {widest['wide']}"
    assert page.evaluate(EQUATIONS_JS) == [], f"{name}: equations cut off at {width} px"
    assert page.evaluate(TABLES_JS) == [], f"{name}: tables cut off at {width} px, or scrolling without saying so"

    # The chapter list: the ☰ button shows it (or, where it is already shown, hides it).
    links = "nav.bd-docs-nav"
    before = _shown(page, links)
    if _button_flips(page, "primary", links, f"{name} at {width} px: the chapter list"):
        assert page.locator(f"{links} a.reference").first.is_visible()  # it opened: a link can be followed
    page.keyboard.press("Escape")
    if _shown(page, links) != before:  # put the page back as it was, for the contents button
        _visible_toggle(page, "primary").click()
    page.wait_for_timeout(400)

    # The page's contents: the "On this page" button shows them where they are hidden.
    contents = "#pst-page-toc-nav"
    if page.locator(contents).count():
        _button_flips(page, "secondary", contents, f"{name} at {width} px: the page contents")
    page_visit.assert_clean()


@pytest.mark.parametrize("name", PAGES)
def test_no_serious_accessibility_problem(visit, name, viewport):
    page_visit = visit(f"{name}.html", viewport=viewport)
    page = page_visit.page
    _wait_ready(page)
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                          ".filter(v => ['serious', 'critical'].includes(v.impact))"
                          ".map(v => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)")
    assert found == [], f"{name} at {viewport[0]} px"


@pytest.mark.parametrize("name", PAGES)
def test_dark_mode_gives_figures_a_dark_background(visit, name):
    page_visit = visit(f"{name}.html", viewport=VIEWPORTS["phone"], color_scheme="dark")
    page = page_visit.page
    _wait_ready(page)
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    figures = page.locator(".js-plotly-plot")
    if figures.count() == 0:  # a page without figures: the theme's own colours are the check
        return
    page.wait_for_timeout(300)
    colours = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
      const luminance = c => {  // any CSS colour, read back by the browser as rgb()
        const probe = document.body.appendChild(document.createElement('span'));
        probe.style.color = c;
        const [r, g, b] = getComputedStyle(probe).color.match(/[\\d.]+/g).map(Number);
        probe.remove();
        return (0.2126*r + 0.7152*g + 0.0722*b) / 255;
      };
      return {paper: luminance(gd._fullLayout.paper_bgcolor), font: luminance(gd._fullLayout.font.color)};
    })""")
    assert all(c["paper"] < 0.25 and c["font"] > 0.6 for c in colours), colours
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    page_visit.screenshot(f"dark-{name.replace('/', '_')}.png")
    page_visit.assert_clean()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_the_byte_budget(visit, name):
    page_visit = visit(f"{name}.html", viewport=VIEWPORTS["phone"])
    page = page_visit.page
    _wait_ready(page)
    page.wait_for_load_state("networkidle")
    files = {unquote(urlparse(url).path).lstrip("/") for url in page_visit.requested if not url.startswith("data:")}
    sizes = {path: len(gzip.compress((SITE / path).read_bytes(), 6)) for path in files if (SITE / path).is_file()}
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:4]
    assert total <= BYTE_BUDGET, f"{name}: {total:,} bytes gzipped, cold; largest {largest}"
