// Build the course's own plotly.js bundle: the core (with scatter) plus bar and heatmap, the only
// trace types attnlab's figures draw. About 90 kB gzipped smaller than plotly.js's "cartesian"
// partial bundle, on every page with a figure. Pages with other trace types get the full bundle
// (attnlab.sphinxext.plotly_bundle_for).
// Usage: node tools/plotly-bundle.js OUTFILE   (the Makefile runs it after `npm ci`)
"use strict";

const path = require("path");
const esbuild = require("esbuild");
const { version } = require("plotly.js/package.json");

const TRACES = ["bar", "heatmap"]; // scatter is part of plotly.js's core
const outfile = process.argv[2];
if (!outfile) {
  console.error("usage: node tools/plotly-bundle.js OUTFILE");
  process.exit(2);
}

esbuild.buildSync({
  stdin: {
    contents:
      "var Plotly = require('plotly.js/lib/core');\n" +
      "Plotly.register([" + TRACES.map((t) => `require('plotly.js/lib/${t}')`).join(", ") + "]);\n" +
      "module.exports = Plotly;\n",
    resolveDir: path.resolve(__dirname, ".."),
  },
  bundle: true,
  minify: true,
  format: "iife",
  globalName: "Plotly",
  target: "es2016",
  // As plotly.js's own esbuild-config.js: browser globals for Node names its dependencies use.
  define: { global: "window", "define.amd": "false", "process.env.NODE_ENV": '"production"',
            "process.env.NODE_DEBUG": "false" },
  // The version line is what attnlab.sphinxext checks against the plotly Python package.
  banner: { js: `/* plotly.js v${version} (attnlab bundle: scatter, ${TRACES.join(", ")}) */` },
  outfile,
  logLevel: "warning",
  loader: { ".css": "empty" }, // map styles: no map is ever drawn
});
