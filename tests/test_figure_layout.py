"""Every Plotly figure of the built site fits its box, at phone, tablet and desktop width.

Each figure of each page is checked as drawn, and again after each of its controls is used
(every menu button or dropdown item and every slider step, clicked through the DOM as a
reader would click them; menus first, then sliders, then the menus again, so a slider
move followed by a menu change is covered too):

(a) every plotted value of a bar or scatter trace lies inside its axis range (compared in
    log space on log axes). Heatmaps are skipped (their cells fill the axes by
    construction), as are category axes and hidden axes that autorange;
(b) no two text labels of the figure overlap by more than ``TOLERANCE`` pixels: tick
    labels, scatter text, annotations, titles, legend entries, colour-bar text, menu and
    slider labels. Each label is its rotated glyph box (``getBBox`` through
    ``getScreenCTM``), so rotated tick labels count as what they are, not as their larger
    upright bounding boxes. No label may lie under the mode bar either (it appears on
    hover, and on phones on every tap);
(c) nothing of the figure (text, markers, legend, colour bar, menus, slider) is drawn
    outside the figure's own box; scatter text is not cut by its plot area; the figure is
    no wider than its cell's output area and the window, unless it lies in a box made to
    scroll sideways (the explorer's stage).

The checks run in the page, one ``page.evaluate`` per figure state.
"""

from __future__ import annotations

import pytest

from tests.conftest import VIEWPORTS
from tests.test_site import toc_pages

pytestmark = [pytest.mark.site, pytest.mark.browser]

#: Present in a page's HTML when it has something plotly.js draws (see test_site).
FIGURE_MARKERS = ("plotly-graph-div", "attnlab-explorer")

LAYOUT_JS = r"""
() => {
  const TOLERANCE = 3;  // px two labels may overlap: glyph boxes include some line spacing
  const MARGIN = 2;     // px anything may stick out of its box (antialiasing, strokes)

  function name(el) {
    let node = el, cls = '';
    for (let i = 0; i < 3 && node && !cls; i++, node = node.parentNode) {
      cls = (node.getAttribute && node.getAttribute('class')) || '';
    }
    const text = (el.textContent || '').trim();
    return (cls.split(' ')[0] || el.tagName) + (text ? ` "${text.length > 40 ? text.slice(0, 39) + '…' : text}"` : '');
  }
  function shown(el) {
    return el.checkVisibility({opacityProperty: true, visibilityProperty: true});
  }
  function quadOfRect(r) {
    return [[r.left, r.top], [r.right, r.top], [r.right, r.bottom], [r.left, r.bottom]];
  }
  // The label's own (possibly rotated) box, in the window's coordinates.
  function quad(el) {
    const b = el.getBBox(), m = el.getScreenCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
  }
  function bounds(q) {
    const xs = q.map(p => p[0]), ys = q.map(p => p[1]);
    return {left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys)};
  }
  // How deep two convex quadrilaterals overlap (separating axis theorem): 0 when apart.
  function depth(a, b) {
    let best = Infinity;
    for (const q of [a, b]) {
      for (let i = 0; i < 2; i++) {
        let nx = q[i][1] - q[i + 1][1], ny = q[i + 1][0] - q[i][0];
        const length = Math.hypot(nx, ny);
        if (!length) continue;
        nx /= length; ny /= length;
        const pa = a.map(([x, y]) => x * nx + y * ny), pb = b.map(([x, y]) => x * nx + y * ny);
        best = Math.min(best, Math.min(Math.max(...pa), Math.max(...pb)) - Math.max(Math.min(...pa), Math.min(...pb)));
      }
    }
    return Math.max(0, best === Infinity ? 0 : best);
  }
  function labels(gd) {
    const out = [];
    for (const el of gd.querySelectorAll('svg text')) {
      // Dropdown items only show while a menu is open; a closed menu's items fade out for 0.25 s.
      if (el.closest('.hoverlayer, .updatemenu-dropdown-button') || !(el.textContent || '').trim() || !shown(el)) continue;
      const b = el.getBBox();
      if (b.width <= 0 || b.height <= 0) continue;
      out.push({el, quad: quad(el)});
    }
    return out;
  }
  const round = v => Math.round(v * 1000) / 1000;

  // (a) every plotted value inside its axis range
  function values(gd) {
    const problems = [];
    gd._fullData.forEach((trace, index) => {
      if (trace.visible !== true || !['scatter', 'scattergl', 'bar'].includes(trace.type)) return;
      const valueAxis = trace.type === 'bar' ? (trace.orientation === 'h' ? 'x' : 'y') : null;
      for (const letter of ['x', 'y']) {
        const data = trace[letter], ax = gd._fullLayout[letter + 'axis' + trace[letter + 'axis'].slice(1)];
        if (!data || !ax || ax.type === 'category' || ax.type === 'multicategory') continue;
        if (!ax.visible && ax.autorange) continue;
        const range = ax.range.map(r => ax.r2l(r));
        const low = Math.min(...range), high = Math.max(...range), slack = (high - low) * 1e-6;
        const points = Array.from(data);
        if (letter === valueAxis && ax.type !== 'log') points.push(trace.base === undefined ? 0 : trace.base);
        const out = points.filter(v => {
          if (v === null || v === undefined || v === '') return false;
          const l = ax.d2l(v);
          return Number.isFinite(l) && (l < low - slack || l > high + slack);
        });
        if (out.length) {
          problems.push(`(a) trace ${index} "${trace.name || trace.type}": ${out.length} ${letter} value(s) such as ` +
            `${round(+out[0])} outside the ${ax._name || letter} range [${range.map(round)}]` +
            (ax.type === 'log' ? ' (log10)' : ''));
        }
      }
    });
    return problems;
  }

  // (b) no two labels overlap, and none lies under the mode bar
  function overlaps(gd, texts) {
    const problems = [];
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const d = depth(texts[i].quad, texts[j].quad);
        if (d > TOLERANCE) problems.push(`(b) ${name(texts[i].el)} and ${name(texts[j].el)} overlap by ${Math.round(d)} px`);
      }
    }
    const bar = gd.querySelector('.modebar');
    const rect = bar && bar.getBoundingClientRect();
    if (rect && rect.width > 0 && getComputedStyle(bar).display !== 'none') {
      for (const t of texts) {
        const d = depth(quadOfRect(rect), t.quad);
        if (d > TOLERANCE) problems.push(`(b) the mode bar covers ${name(t.el)} by ${Math.round(d)} px`);
      }
    }
    return problems;
  }

  // (c) everything inside the figure's box; scatter text inside its plot area
  function outside(gd, texts) {
    const problems = [];
    const box = gd.getBoundingClientRect(), width = document.documentElement.clientWidth;
    // The figure fits its cell's output area and the window, unless it lies in a box made to
    // scroll sideways inside that area (the explorer's stage, on a phone).
    const area = gd.closest('.cell_output, .output');
    let scroller = gd.parentElement;
    while (scroller && scroller !== area && !['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX)) {
      scroller = scroller.parentElement;
    }
    if (!scroller || scroller === area) {
      const limit = area ? area.getBoundingClientRect() : {left: 0, right: width};
      if (box.left < Math.max(0, limit.left) - MARGIN || box.right > Math.min(width, limit.right) + MARGIN) {
        problems.push(`(c) the figure spans x ${Math.round(box.left)}–${Math.round(box.right)} px: wider than its column ` +
                      `(${Math.round(Math.max(0, limit.left))}–${Math.round(Math.min(width, limit.right))} px)`);
      }
    }
    const parts = texts.map(t => ({el: t.el, b: bounds(t.quad)}));
    const drawn = '.scatterlayer .point, .legend, .colorbar, .updatemenu-header-group, .slider-group';
    for (const el of gd.querySelectorAll(drawn)) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && shown(el)) parts.push({el, b: r});
    }
    for (const {el, b} of parts) {
      const sticks = Math.max(box.left - b.left, b.right - box.right, box.top - b.top, b.bottom - box.bottom);
      if (sticks > MARGIN) problems.push(`(c) ${name(el)} sticks ${Math.round(sticks)} px out of the figure`);
    }
    for (const group of gd.querySelectorAll('.scatterlayer .trace')) {
      const trace = group.__data__ && group.__data__[0] && group.__data__[0].trace;
      if (!trace || trace.cliponaxis === false || trace.visible !== true) continue;
      const xa = gd._fullLayout[trace.xaxis.replace('x', 'xaxis')], ya = gd._fullLayout[trace.yaxis.replace('y', 'yaxis')];
      const area = {left: box.left + xa._offset, right: box.left + xa._offset + xa._length,
                    top: box.top + ya._offset, bottom: box.top + ya._offset + ya._length};
      for (const el of group.querySelectorAll('.textpoint text')) {
        if (!(el.textContent || '').trim() || !shown(el)) continue;
        const b = bounds(quad(el));
        const cut = Math.max(area.left - b.left, b.right - area.right, area.top - b.top, b.bottom - area.bottom);
        if (cut > MARGIN) problems.push(`(c) ${name(el)} is cut ${Math.round(cut)} px by the edge of its plot area`);
      }
    }
    return problems;
  }

  function check(gd) {
    const box = gd.getBoundingClientRect();
    if (!gd._fullLayout || box.width === 0) return ['the figure is not drawn'];
    const texts = labels(gd);
    return [...values(gd), ...overlaps(gd, texts), ...outside(gd, texts)];
  }

  // Every control of a figure: menu items, then slider steps, then the menu items again.
  function controls(gd) {
    const menus = [], sliders = [];
    (gd._fullLayout.updatemenus || []).forEach((menu, m) => {
      if (menu.visible === false) return;
      menu.buttons.forEach((button, j) => {
        if (button.visible !== false && button.method !== 'skip' && button.execute !== false) {
          menus.push({kind: 'menu', index: m, item: j, dropdown: menu.type !== 'buttons', label: button.label});
        }
      });
    });
    (gd._fullLayout.sliders || []).forEach((slider, s) => {
      if (slider.visible === false) return;
      slider.steps.forEach((step, j) => {
        if (step.visible !== false && step.method !== 'skip' && step.execute !== false) {
          sliders.push({kind: 'slider', index: s, item: j, label: step.label});
        }
      });
    });
    return sliders.length ? [...menus, ...sliders, ...menus] : menus;
  }

  const EVENTS = {update: 'plotly_update', restyle: 'plotly_restyle', relayout: 'plotly_relayout',
                  animate: 'plotly_animated'};
  const frame = () => new Promise(resolve => requestAnimationFrame(() => resolve()));
  function click(el, x, y) {
    const init = {bubbles: true, cancelable: true, view: window, clientX: x, clientY: y, button: 0};
    for (const type of ['mousedown', 'mouseup', 'click']) el.dispatchEvent(new MouseEvent(type, init));
  }
  function centre(el) {
    const r = el.getBoundingClientRect();
    return [r.left + r.width / 2, r.top + r.height / 2];
  }

  // Use one control as a click does; returns a problem, or null once plotly has redrawn.
  async function use(gd, control) {
    const options = control.kind === 'menu' ? gd._fullLayout.updatemenus[control.index].buttons[control.item]
                                            : gd._fullLayout.sliders[control.index].steps[control.item];
    const done = new Promise(resolve => {
      const timer = setTimeout(() => resolve(false), 5000);
      gd.once(EVENTS[options.method] || 'plotly_afterplot', () => { clearTimeout(timer); resolve(true); });
    });
    const what = `${control.kind} ${control.index} item ${control.item} "${control.label}"`;
    const activeBefore = control.kind === 'menu' ? gd._fullLayout.updatemenus[control.index].active
                                                 : gd._fullLayout.sliders[control.index].active;
    if (control.kind === 'menu') {
      const containers = [...gd.querySelectorAll('.updatemenu-container')];
      const container = containers.find(c => c.__data__ && c.__data__._index === control.index) || containers[control.index];
      let buttons;
      if (control.dropdown) {
        for (let i = 0; i < 60 && container.querySelector('.updatemenu-dropdown-button'); i++) await frame();  // last fold
        const header = container.querySelector('.updatemenu-header');
        click(header, ...centre(header));
        await frame();
        buttons = container.querySelectorAll('.updatemenu-dropdown-button-group .updatemenu-dropdown-button');
      } else {
        buttons = container.querySelectorAll('.updatemenu-header-group .updatemenu-button');
      }
      const button = [...buttons].find(b => b.__data__ && b.__data__._index === control.item) || buttons[control.item];
      if (!button) return `${what}: no button to click`;
      click(button, ...centre(button));
    } else {
      const group = gd.querySelectorAll('.slider-group')[control.index];
      const tick = group.querySelectorAll('.slider-tick-rect')[control.item];
      const [x, y] = centre(tick);
      group.querySelector('.slider-rail-touch-rect').dispatchEvent(
        new MouseEvent('mousedown', {bubbles: true, cancelable: true, view: window, clientX: x, clientY: y, button: 0}));
      gd.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, cancelable: true, view: window, clientX: x, clientY: y}));
      window.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, view: window, clientX: x, clientY: y}));
    }
    const redrawn = await done;
    await frame(); await frame();
    const active = control.kind === 'menu' ? gd._fullLayout.updatemenus[control.index].active
                                           : gd._fullLayout.sliders[control.index].active;
    if (active !== control.item) return `${what}: the click did not select it (active: ${active})`;
    // A slider step that is already the active one animates nothing: plotly sends no event then.
    const noOp = control.kind === 'slider' && activeBefore === control.item;
    if (!redrawn && !noOp) return `${what}: plotly did not finish redrawing within 5 s`;
    return null;
  }

  window.attnlabFigureLayout = {
    figures: () => [...document.querySelectorAll('.js-plotly-plot')],
    check,
    controls,
    use,
    // One figure state: optionally use a control first, then check. Problems as strings.
    async state(index, control) {
      const gd = this.figures()[index];
      if (control) {
        const problem = await use(gd, control);
        if (problem) return [problem];
      }
      return check(gd);
    },
  };
}
"""

#: Wait until the page's figures are drawn (those in widgets and the explorer's draw after load):
#: at least as many as its HTML holds figure divs, at least one, and none half drawn.
READY_JS = r"""
expected => {
  const pending = [...document.querySelectorAll('.plotly-graph-div')].filter(el => !el._fullLayout);
  const plots = document.querySelectorAll('.js-plotly-plot').length;
  return pending.length === 0 && plots >= Math.max(1, expected);
}
"""


@pytest.mark.parametrize("name", toc_pages())
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_figures_fit_and_labels_do_not_overlap(site, visit, viewport, name):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    html = (site / f"{name}.html").read_text(encoding="utf-8")
    if not any(marker in html for marker in FIGURE_MARKERS):
        return  # no figure on this page
    page = visit(f"{name}.html", viewport=VIEWPORTS[viewport]).page
    expected = html.count("plotly-graph-div")
    try:
        page.wait_for_function(READY_JS, arg=expected, timeout=60_000)
    except PlaywrightTimeout:
        drawn = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
        pytest.fail(f"{name} at {viewport}: {drawn} figure(s) drawn after 60 s, its HTML has {expected}")
    page.wait_for_timeout(300)  # let a figure drawn in a later task (widgets, the explorer) settle
    page.evaluate(LAYOUT_JS)
    titles = page.evaluate("window.attnlabFigureLayout.figures().map(gd => "
                           "((gd.layout.title || {}).text || '').replace(/<br>/g, ' ').slice(0, 40))")
    problems = []
    for index, title in enumerate(titles):
        states = [None] + page.evaluate("i => window.attnlabFigureLayout.controls(window.attnlabFigureLayout.figures()[i])",
                                        index)
        for control in states:
            found = page.evaluate("([i, c]) => window.attnlabFigureLayout.state(i, c)", [index, control])
            after = "as drawn" if control is None else f"after {control['kind']} {control['index']} → “{control['label']}”"
            problems += [f"figure {index} “{title}” {after}: {problem}" for problem in found]
    assert not problems, f"{name} at {viewport}:\n" + "\n".join(dict.fromkeys(problems))
