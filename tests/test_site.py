"""Checks of the built site's files (no browser): every page built, nothing from a CDN."""

import re

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.site

CDN_HOSTS = ("cdn.", "unpkg.com", "jsdelivr", "cdnjs", "cdn.plot.ly", "googleapis", "mathjax.org")
# Loaded resources (not links a reader may click): they must all be served by the site.
RESOURCE = re.compile(r'<(?:script|img|iframe|source)\b[^>]*\bsrc="([^"]+)"|<link\b[^>]*\bhref="([^"]+)"')


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return files


@pytest.fixture(scope="module")
def pages(site) -> dict[str, str]:
    return {name: (site / f"{name}.html").read_text(encoding="utf-8") for name in toc_pages()}


def test_every_toc_entry_was_built(site):
    for name in toc_pages():
        assert (site / f"{name}.html").is_file(), name


def test_no_resource_is_loaded_from_another_host(site):
    for path in site.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        for match in RESOURCE.finditer(html):
            url = match.group(1) or match.group(2)
            assert not re.match(r"^(https?:)?//", url), f"{path.relative_to(site)} loads {url}"
        for host in CDN_HOSTS:
            assert host not in html, f"{path.relative_to(site)} names {host}"


def test_plotly_js_only_where_a_figure_is(pages):
    for name, html in pages.items():
        has_figure = "plotly-graph-div" in html or "attnlab-explorer" in html
        assert ("vendor/plotly" in html) == has_figure, name
    assert "plotly-graph-div" in pages["book/00-welcome"]


def test_the_smaller_plotly_bundle_serves_two_dimensional_figures(pages):
    from attnlab.sphinxext import PLOTLY_JS, PLOTLY_SMALL_JS, plotly_bundle_for

    for name in ("book/00-welcome", "book/explorer-playground"):
        assert PLOTLY_SMALL_JS in pages[name] and PLOTLY_JS not in pages[name], name
    three_d = '<div class="attnlab-figure" data-attnlab-traces="scatter3d"><div class="plotly-graph-div"></div></div>'
    assert plotly_bundle_for(three_d) == PLOTLY_JS
    untagged = '<div class="plotly-graph-div"></div>'  # a figure not drawn by attnlab's renderer
    assert plotly_bundle_for(untagged) == PLOTLY_JS
    assert plotly_bundle_for("<p>no figure</p>") is None
    pie = '<div class="attnlab-figure" data-attnlab-traces="pie"><div class="plotly-graph-div"></div></div>'
    assert plotly_bundle_for(pie) == PLOTLY_JS  # not in the small bundle


def test_the_small_bundle_holds_the_traces_the_site_expects(site):
    from attnlab.sphinxext import PLOTLY_SMALL_JS, SMALL_BUNDLE_TRACES

    built = (site / "_static" / PLOTLY_SMALL_JS).read_text(encoding="utf-8")
    header = built[:200]
    assert header.startswith("/* plotly.js v") and all(trace in header for trace in SMALL_BUNDLE_TRACES)
    source = (ROOT / "tools" / "plotly-bundle.js").read_text(encoding="utf-8")
    listed = set(re.search(r"const TRACES = \[([^\]]*)\]", source).group(1).replace('"', "").replace(" ", "").split(","))
    assert listed | {"scatter"} == SMALL_BUNDLE_TRACES


def test_vendored_assets_are_in_the_site(site):
    vendor = site / "_static" / "vendor"
    for asset in ("plotly.min.js", "mathjax/startup.js", "mathjax/input/tex.js", "html-manager/embed.js"):
        assert (vendor / asset).stat().st_size > 10_000, asset


def _has_code(name: str) -> bool:
    """A lab, or a MyST page with a code cell that shows (the glossary has none; the card's checks are removed)."""
    markdown = ROOT / f"{name}.md"
    if not markdown.is_file():
        return True
    cells = re.findall(r"```\{code-cell\}[^\n]*\n((?::[^\n]*\n)*)", markdown.read_text(encoding="utf-8"))
    return any("remove-cell" not in options for options in cells)


def test_pages_were_executed_without_errors(pages):
    # Pages of text and generated tables only: the glossary, the card, the Teach pages but the handout.
    without_code = {"book/glossary", "book/quick-reference", "book/teach/index", "book/teach/session-plans",
                    "book/teach/instructor-notes"}
    assert {name for name in pages if not _has_code(name)} == without_code
    for name, html in pages.items():
        if _has_code(name):
            assert 'class="cell_output' in html, f"{name} shows no executed output"
        assert "Traceback" not in html and "output error" not in html, name


def test_no_launch_button_that_cannot_work(pages):
    for name, html in pages.items():
        assert "launch-buttons" not in html and "colab-button" not in html, name


def test_chapter_links_its_lab_in_colab(pages):
    assert 'class="attnlab-colab reference external" href="https://colab.research.google.com/github/' in pages["book/00-welcome"]
