// attnlab: Plotly figures follow the site's light / dark theme and their column's width, with no kernel.
// Figures are built light (white paper, dark text). In dark mode every figure on the page is
// re-laid out with the theme's own colours; the original values are kept to switch back.
// The static explorer calls attnlabFigureTheme.apply(layout) before each redraw.
(function () {
  "use strict";

  var AXIS = /^[xy]axis\d*$/;

  function cssColour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function isDark() {
    return document.documentElement.dataset.theme === "dark";
  }

  function luminance(colour) {
    var probe = document.createElement("span");
    probe.style.color = colour;
    document.body.appendChild(probe);
    var rgb = getComputedStyle(probe).color.match(/[\d.]+/g).map(Number);
    probe.remove();
    return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
  }

  // Layout paths (Plotly.relayout keys) and their dark values, for one figure.
  function darkValues(layout, axes) {
    var background = cssColour("--pst-color-background", "#14181e");
    var text = cssColour("--pst-color-text-base", "#ced6dd");
    var panel = cssColour("--pst-color-surface", "#29313d");
    var line = "rgba(255, 255, 255, 0.18)";
    var values = {"paper_bgcolor": background, "font.color": text, "legend.bgcolor": "rgba(0, 0, 0, 0)"};
    // A grey plot background means "masked" in attnlab's figures: only a white one turns dark.
    if (!layout.plot_bgcolor || luminance(layout.plot_bgcolor) > 0.9) values.plot_bgcolor = background;
    axes.forEach(function (axis) {
      values[axis + ".gridcolor"] = line;
      values[axis + ".zerolinecolor"] = "rgba(255, 255, 255, 0.45)";
      values[axis + ".linecolor"] = line;
    });
    (layout.updatemenus || []).forEach(function (_, i) {
      var menu = "updatemenus[" + i + "].";
      values[menu + "bgcolor"] = panel;
      values[menu + "bordercolor"] = line;
      values[menu + "font.color"] = text;
      values[menu + "activecolor"] = "#35506e"; // the chosen button: light text on a blue-grey
    });
    (layout.sliders || []).forEach(function (_, i) {
      var slider = "sliders[" + i + "].";
      values[slider + "bgcolor"] = "#9aa5b1"; // the knob and rail, visible on the dark page
      values[slider + "activebgcolor"] = "#ced6dd";
      values[slider + "bordercolor"] = line;
      values[slider + "tickcolor"] = text;
      values[slider + "font.color"] = text;
      values[slider + "currentvalue.font.color"] = text;
    });
    return values;
  }

  function path(key) {
    return key.replace(/\[(\d+)\]/g, ".$1").split(".");
  }

  function getPath(object, key) {
    return path(key).reduce(function (at, part) { return at == null ? undefined : at[part]; }, object);
  }

  function setPath(object, key, value) {
    var parts = path(key);
    var at = object;
    parts.slice(0, -1).forEach(function (part) {
      if (at[part] == null) at[part] = {};
      at = at[part];
    });
    at[parts[parts.length - 1]] = value;
  }

  function axesOf(layout) {
    var axes = Object.keys(layout).filter(function (key) { return AXIS.test(key); });
    return axes.length ? axes : ["xaxis", "yaxis"];
  }

  // For a layout about to be drawn (the explorer's Plotly.react): dark values set in place.
  function apply(layout) {
    if (!isDark()) return layout;
    var values = darkValues(layout, axesOf(layout));
    Object.keys(values).forEach(function (key) { setPath(layout, key, values[key]); });
    return layout;
  }

  // For a figure already drawn: relayout to the current theme, remembering its own colours.
  function follow(gd) {
    if (!gd.layout || gd.classList.contains("attnlab-explorer-plot")) return;  // the explorer themes itself
    if (isDark() && !gd.attnlabLight) {
      var values = darkValues(gd.layout, axesOf(gd._fullLayout || gd.layout));
      gd.attnlabLight = {};
      Object.keys(values).forEach(function (key) {
        var own = getPath(gd.layout, key);
        gd.attnlabLight[key] = own === undefined ? null : own;  // null: Plotly's default again
      });
      Plotly.relayout(gd, values);
    } else if (!isDark() && gd.attnlabLight) {
      var light = gd.attnlabLight;
      delete gd.attnlabLight;
      Plotly.relayout(gd, light);
    }
  }

  function followAll() {
    document.querySelectorAll(".js-plotly-plot").forEach(follow);
  }

  // plotly.js resizes a figure when the window does, not when its column does (the page settling
  // after fonts and math load, a sidebar opening): redraw each figure at its column's new width.
  function fitColumns() {
    if (!window.ResizeObserver) return;
    var observer = new ResizeObserver(function (entries) {
      entries.forEach(function (entry) {
        var gd = entry.target;
        if (gd._fullLayout && Math.abs(gd._fullLayout.width - gd.clientWidth) > 1) Plotly.Plots.resize(gd);
      });
    });
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (!gd.classList.contains("attnlab-explorer-plot")) observer.observe(gd);
    });
  }

  window.attnlabFigureTheme = {apply: apply, isDark: isDark};
  window.addEventListener("load", followAll);
  window.addEventListener("load", fitColumns);
  new MutationObserver(followAll).observe(document.documentElement, {attributes: true, attributeFilter: ["data-theme"]});
})();
