// attnlab static explorer: draws real attention maps, stored in the page, with plotly.js.
// Data come from attnlab.static_explorer (tokens already HTML-escaped, weights as 8-bit bytes).
(function () {
  "use strict";
  var VIRIDIS = "Viridis";
  var MASKED = "#c8c8c8";
  var CONFIG = { displaylogo: false, responsive: true };

  function decode(base64) {
    var raw = atob(base64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function select(label, options, onChange) {
    var wrap = document.createElement("label");
    wrap.className = "attnlab-explorer-control";
    wrap.appendChild(document.createTextNode(label + " "));
    var element = document.createElement("select");
    element.setAttribute("data-control", label.toLowerCase());
    options.forEach(function (text, index) {
      var option = document.createElement("option");
      option.value = String(index);
      option.innerHTML = text; // texts were escaped by the builder: they stay text
      element.appendChild(option);
    });
    element.addEventListener("change", onChange);
    wrap.appendChild(element);
    return { wrap: wrap, element: element };
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // As attnlab.figures.escape_labels: a blank character token (the mini-GPT reads characters) stays visible.
  var VISIBLE_BLANKS = { " ": "␣", "\n": "⏎", "\t": "⇥" };
  function visibleToken(token) { return escapeHtml(VISIBLE_BLANKS[token] || token); }

  function range(n, prefix) {
    var out = [];
    for (var i = 0; i < n; i++) out.push(prefix + i);
    return out;
  }

  // Scores in [0, 1] of every head of one sentence, as attnlab.patterns.score_patterns computes them:
  // {pattern: [score of layer 0 head 0, layer 0 head 1, …]}. at(l, h, q, k) is one attention weight.
  function scorePatterns(at, layers, heads, n, special, causal) {
    var names = ["previous token", "next token", "self", "first token", "separator", "broad"], scores = {};
    names.forEach(function (name) { scores[name] = []; });
    var separators = special.map(function (s, i) { return s && i > 0; });
    var anySeparator = separators.some(Boolean);
    for (var l = 0; l < layers; l++) {
      for (var h = 0; h < heads; h++) {
        var sums = { previous: 0, next: 0, self: 0, first: 0, separator: 0, broad: 0 }, spreadRows = 0;
        for (var q = 0; q < n; q++) {
          sums.self += at(l, h, q, q);
          if (q > 0) { sums.previous += at(l, h, q, q - 1); sums.first += at(l, h, q, 0); }
          if (q < n - 1 && !causal) sums.next += at(l, h, q, q + 1);
          var allowed = causal ? q + 1 : n, entropy = 0;
          for (var k = 0; k < allowed; k++) {
            var w = at(l, h, q, k);
            if (anySeparator && separators[k]) sums.separator += w;
            entropy -= w * Math.log(Math.max(w, 1e-12));
          }
          if (allowed > 1) { sums.broad += entropy / Math.log(allowed); spreadRows++; }
        }
        var pairs = Math.max(n - 1, 1), clip = function (x) { return Math.min(1, Math.max(0, x)); };
        scores["previous token"].push(clip(sums.previous / pairs));
        scores["next token"].push(clip(sums.next / pairs));
        scores.self.push(clip(sums.self / n));
        scores["first token"].push(clip(sums.first / pairs));
        scores.separator.push(clip(sums.separator / n));
        scores.broad.push(clip(spreadRows ? sums.broad / spreadRows : 0));
      }
    }
    return scores;
  }

  // The best head for each pattern, where it scores at least 0.3 (the builder's rule for the prepared sentences).
  function bestHeads(scores, heads) {
    var found = [];
    Object.keys(scores).forEach(function (pattern) {
      var table = scores[pattern], best = 0;
      for (var i = 1; i < table.length; i++) if (table[i] > table[best]) best = i;
      if (table[best] >= 0.3) found.push({ pattern: pattern, layer: Math.floor(best / heads), head: best % heads, score: table[best] });
    });
    return found;
  }

  function Explorer(root) {
    var data = JSON.parse(root.querySelector(".attnlab-explorer-data").textContent);
    this.data = data;
    this.weights = data.sentences.map(function (s) { return decode(s.weights); });
    this.scales = data.sentences.map(function () { return 1 / 255; }); // 8-bit bytes; typed sentences: floats
    var self = this, redraw = function () { self.draw(); };
    var controls = document.createElement("div");
    controls.className = "attnlab-explorer-controls";
    this.sentence = select("Sentence", data.sentences.map(function (s) { return s.name; }), redraw);
    this.layer = select("Layer", range(data.layers, ""), redraw);
    this.head = select("Head", range(data.heads, ""), redraw);
    this.view = select("View", data.views, redraw);
    [this.sentence, this.layer, this.head, this.view].forEach(function (c) { controls.appendChild(c.wrap); });
    root.appendChild(controls);
    this.addGenerating(root); // a GPT's own feature first: writing
    this.addTyping(root);
    this.hints = document.createElement("div");
    this.hints.className = "attnlab-explorer-patterns";
    root.appendChild(this.hints);
    this.found = [];
    this.status = document.createElement("p");
    this.status.className = "attnlab-explorer-status";
    this.status.setAttribute("aria-live", "polite");
    root.appendChild(this.status);
    // The stage scrolls sideways when a long sentence's cells would be too small to read (phones);
    // the canvas inside it is as wide as the figure, with the plot and its labels.
    this.stage = document.createElement("div");
    this.stage.className = "attnlab-explorer-stage";
    // A region that may scroll must be reachable from the keyboard (arrow keys scroll it).
    this.stage.tabIndex = 0;
    this.stage.setAttribute("role", "region");
    this.stage.setAttribute("aria-label", "Attention figure (scrolls sideways when wider than the screen)");
    this.canvas = document.createElement("div");
    this.canvas.className = "attnlab-explorer-canvas";
    this.plot = document.createElement("div");
    this.plot.className = "attnlab-explorer-plot";
    // Token labels of the heatmap are HTML above the plot: plotly.js would redraw 64 tick labels
    // on every change of z, which takes most of a redraw; these are drawn once per sentence.
    this.labels = document.createElement("div");
    this.labels.className = "attnlab-explorer-labels";
    this.canvas.appendChild(this.plot);
    this.canvas.appendChild(this.labels);
    this.stage.appendChild(this.canvas);
    root.appendChild(this.stage);
    root.attnlab = this;
    this.draw();
    // The site's light / dark switch: redraw in the new colours.
    new MutationObserver(function () { self.drawn = null; self.draw(); })
      .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  }

  // Cells of the one-head heatmap stay at least this wide: below it the labels cannot be read.
  var MIN_CELL = 14, ONE_HEAD_FRAME = 244;

  Explorer.prototype.matrix = function (s, layer, head) {
    var tokens = this.data.sentences[s].tokens, n = tokens.length, bytes = this.weights[s];
    var start = (layer * this.data.heads + head) * n * n, rows = [];
    for (var q = 0; q < n; q++) {
      var row = new Array(n);
      for (var k = 0; k < n; k++) {
        row[k] = this.data.causal && k > q ? null : bytes[start + q * n + k] * this.scales[s];
      }
      rows.push(row);
    }
    return rows;
  };

  Explorer.prototype.oneHead = function (s, layer, head) {
    var tokens = this.data.sentences[s].tokens, n = tokens.length, ticks = range(n, "");
    var hover = tokens.map(function (q) { return tokens.map(function (k) { return [q, k]; }); });
    return {
      data: [{
        type: "heatmap", z: this.matrix(s, layer, head), x: ticks.map(Number), y: ticks.map(Number),
        zmin: 0, zmax: 1, colorscale: VIRIDIS, zsmooth: "fast", // one pixel per cell, scaled: far faster to redraw
        customdata: hover, colorbar: { title: { text: "weight", side: "right" }, thickness: 14 },
        hovertemplate: "query <b>%{customdata[0]}</b> → key <b>%{customdata[1]}</b><br>weight %{z:.3f}<extra></extra>",
      }],
      layout: {
        height: 160 + 22 * n, margin: { t: 122, l: 122, r: 44, b: 10 }, plot_bgcolor: MASKED,
        // The token labels are drawn by placeLabels(), in HTML, in the space these margins leave.
        xaxis: { showticklabels: false, ticks: "", side: "top", range: [-0.5, n - 0.5] },
        yaxis: { showticklabels: false, ticks: "", range: [n - 0.5, -0.5] },
      },
    };
  };

  Explorer.prototype.allHeads = function (s, layer, head) {
    var tokens = this.data.sentences[s].tokens, n = tokens.length, L = this.data.layers, H = this.data.heads;
    var z = [], gap = 1;
    for (var l = 0; l < L; l++) {
      var block = [];
      for (var h = 0; h < H; h++) block.push(this.matrix(s, l, h));
      for (var q = 0; q < n; q++) {
        var row = [];
        for (var h2 = 0; h2 < H; h2++) {
          row = row.concat(block[h2][q]);
          if (h2 < H - 1) row.push(null);
        }
        z.push(row);
      }
      if (l < L - 1) z.push(new Array(z[0].length).fill(null));
    }
    var centre = function (i) { return i * (n + gap) + (n - 1) / 2; };
    return {
      data: [{ type: "heatmap", z: z, zmin: 0, zmax: 1, colorscale: VIRIDIS, showscale: false, hoverinfo: "none" }],
      layout: {
        height: 80 + L * 110, margin: { t: 40, l: 50, r: 10, b: 10 }, plot_bgcolor: "white",
        xaxis: { tickmode: "array", tickvals: range(H, "").map(function (h) { return centre(+h); }), ticktext: range(H, "H"), side: "top" },
        yaxis: { tickmode: "array", tickvals: range(L, "").map(function (l) { return centre(+l); }), ticktext: range(L, "L"), autorange: "reversed" },
        shapes: [this.frame(s, layer, head)],
      },
    };
  };

  // The orange frame around the chosen head in the all-heads grid.
  Explorer.prototype.frame = function (s, layer, head) {
    var n = this.data.sentences[s].tokens.length, size = n + 1;
    return { type: "rect", x0: head * size - 0.5, x1: head * size + n - 0.5, y0: layer * size - 0.5,
             y1: layer * size + n - 0.5, line: { color: "#E69F00", width: 3 } };
  };

  Explorer.prototype.headView = function (s, layer, head) {
    var tokens = this.data.sentences[s].tokens, n = tokens.length, m = this.matrix(s, layer, head);
    var levels = [0.05, 0.2, 0.4, 0.7, 1.01], traces = [];
    for (var b = 0; b < levels.length - 1; b++) {
      var xs = [], ys = [];
      for (var q = 0; q < n; q++) {
        for (var k = 0; k < n; k++) {
          var w = m[q][k];
          if (w !== null && w >= levels[b] && w < levels[b + 1]) { xs.push(0, 1, null); ys.push(q, k, null); }
        }
      }
      traces.push({ type: "scatter", mode: "lines", x: xs, y: ys, hoverinfo: "skip", showlegend: true,
                    name: "weight " + levels[b] + "–" + Math.min(1, levels[b + 1]).toFixed(1),
                    line: { color: "#0072B2", width: 1 + 3 * b }, opacity: 0.25 + 0.25 * b });
    }
    var ticks = range(n, "").map(Number);
    // Hovering a token (its label) highlights its lines, in orange, on this last trace.
    traces.push({ type: "scatter", mode: "lines", x: [], y: [], hoverinfo: "skip", showlegend: false,
                  name: "highlight", line: { color: "#D55E00", width: 6 } });
    traces.push({ type: "scatter", mode: "text", x: ticks.map(function () { return -0.02; }), y: ticks, text: tokens,
                  textposition: "middle left", hoverinfo: "none", showlegend: false, name: "queries" });
    traces.push({ type: "scatter", mode: "text", x: ticks.map(function () { return 1.02; }), y: ticks, text: tokens,
                  textposition: "middle right", hoverinfo: "none", showlegend: false, name: "keys" });
    return {
      data: traces,
      layout: { height: 120 + 24 * n, margin: { t: 30, l: 10, r: 10, b: 10 }, plot_bgcolor: "white",
                xaxis: { visible: false, range: [-0.5, 1.5] }, yaxis: { visible: false, autorange: "reversed" } },
    };
  };

  // Query labels left of the rows, key labels (vertical) above the columns, aligned to the cells.
  Explorer.prototype.placeLabels = function (tokens) {
    var box = this.labels, layout = this.plot._fullLayout;
    if (!tokens) { box.replaceChildren(); box.tokens = null; return; }
    if (box.tokens !== tokens) {
      box.replaceChildren();
      [["query-title", "query"], ["key-title", "key (attended to)"]].forEach(function (pair) {
        var title = document.createElement("span");
        title.className = "attnlab-explorer-" + pair[0];
        title.textContent = pair[1];
        box.appendChild(title);
      });
      ["queries", "keys"].forEach(function (side) {
        var column = document.createElement("div");
        column.className = "attnlab-explorer-" + side;
        tokens.forEach(function (token) {
          var label = document.createElement("span");
          label.innerHTML = token; // escaped by the builder: it stays text
          column.appendChild(label);
        });
        box.appendChild(column);
      });
      box.tokens = tokens;
    }
    var x = layout.xaxis, y = layout.yaxis, n = tokens.length, cellW = x._length / n, cellH = y._length / n;
    var geometry = [x._offset, x._length, y._offset, y._length].join();
    if (box.geometry === geometry) return;
    box.geometry = geometry;
    var queries = box.children[2].children, keys = box.children[3].children;
    box.children[0].style.cssText = "left:2px;top:" + y._offset + "px;height:" + y._length + "px";
    box.children[1].style.cssText = "top:2px;left:" + x._offset + "px;width:" + x._length + "px";
    for (var i = 0; i < n; i++) {
      queries[i].style.cssText = "right:" + (this.plot.clientWidth - x._offset + 4) + "px;top:" + (y._offset + i * cellH) +
        "px;height:" + cellH + "px;line-height:" + cellH + "px";
      keys[i].style.cssText = "left:" + (x._offset + i * cellW) + "px;bottom:" + (this.plot.clientHeight - y._offset + 4) +
        "px;width:" + cellW + "px";
    }
  };

  // Lines of one token: from query q (left) or into key k (right), weight ≥ 0.05.
  Explorer.prototype.highlight = function (side, index) {
    var s = this.drawn.s, m = this.matrix(s, +this.layer.element.value, +this.head.element.value);
    var xs = [], ys = [], n = m.length;
    for (var j = 0; j < n; j++) {
      var w = side === "queries" ? m[index][j] : m[j][index];
      if (w !== null && w >= 0.05) {
        xs.push(0, 1, null);
        ys.push(side === "queries" ? index : j, side === "queries" ? j : index, null);
      }
    }
    var last = this.plot.data.length - 3;
    Plotly.restyle(this.plot, { x: [xs], y: [ys] }, [last]);
  };

  Explorer.prototype.listen = function () {
    var self = this;
    this.plot.on("plotly_hover", function (event) {
      var point = event.points[0], name = point.data.name;
      if (self.drawn.view === 2 && (name === "queries" || name === "keys")) self.highlight(name, point.pointIndex);
    });
    // After a resize plotly.js redraws at the new width: move the labels with the cells.
    this.plot.on("plotly_afterplot", function () {
      if (self.drawn && self.drawn.view === 0) self.placeLabels(self.data.sentences[self.drawn.s].tokens);
    });
    this.plot.on("plotly_unhover", function () {
      if (self.drawn.view === 2) Plotly.restyle(self.plot, { x: [[]], y: [[]] }, [self.plot.data.length - 3]);
    });
  };

  // Heads found in sentence s by their patterns; induction is found once per model, on repeated random tokens.
  Explorer.prototype.patternsFor = function (s) {
    if (!this.found[s]) {
      var n = this.data.sentences[s].tokens.length, H = this.data.heads;
      var bytes = this.weights[s], scale = this.scales[s];
      var at = function (l, h, q, k) { return bytes[((l * H + h) * n + q) * n + k] * scale; };
      var special = this.data.sentences[s].special || this.data.sentences[s].tokens.map(function () { return false; });
      this.found[s] = bestHeads(scorePatterns(at, this.data.layers, H, n, special, this.data.causal), H)
        .concat(this.data.patterns.filter(function (p) { return p.pattern === "induction"; }));
    }
    return this.found[s];
  };

  Explorer.prototype.showHints = function (s) {
    var self = this, found = this.patternsFor(s);
    this.hints.replaceChildren();
    if (!found.length) return;
    this.hints.appendChild(document.createTextNode("Heads found automatically in this sentence: "));
    found.forEach(function (p) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = "L" + p.layer + " H" + p.head + " · " + p.pattern + " (" + p.score.toFixed(2) + ")";
      if (p.pattern === "induction") button.title = "Found on random tokens repeated twice, not on this sentence";
      button.addEventListener("click", function () {
        self.layer.element.value = String(p.layer);
        self.head.element.value = String(p.head);
        self.view.element.value = "0";
        self.draw();
      });
      self.hints.appendChild(button);
    });
  };

  // A sentence computed in this browser joins the menu and is drawn: label is plain text, out from attnlabBrowserModel.
  Explorer.prototype.addSentence = function (label, out) {
    var name = escapeHtml(label);
    this.data.sentences.push({ name: name, tokens: out.tokens.map(visibleToken), special: out.special });
    this.weights.push(out.weights);
    this.scales.push(1); // float weights
    var option = document.createElement("option");
    option.value = String(this.data.sentences.length - 1);
    option.innerHTML = name; // escaped above: it stays text
    this.sentence.element.appendChild(option);
    this.sentence.element.value = option.value;
    this.draw();
  };

  // A text box for the reader's own sentence, run by the real model in this browser
  // (attnlab-browser-model.js), where that model is one the site ships.
  Explorer.prototype.addTyping = function (root) {
    var engine = window.attnlabBrowserModel, model = this.data.model;
    if (!engine || engine.models.indexOf(model) < 0) return;
    var self = this, form = document.createElement("form");
    form.className = "attnlab-explorer-typing";
    var label = document.createElement("label");
    label.appendChild(document.createTextNode("Your sentence "));
    this.typed = document.createElement("input");
    this.typed.type = "text";
    this.typed.setAttribute("data-control", "typed");
    this.typed.placeholder = "Type a sentence, then Enter";
    label.appendChild(this.typed);
    var button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Show its attention";
    form.appendChild(label);
    form.appendChild(button);
    this.typingNote = document.createElement("p");
    this.typingNote.className = "attnlab-explorer-typing-note";
    this.typingNote.setAttribute("aria-live", "polite");
    if (typeof WebAssembly !== "object") {
      this.typed.disabled = button.disabled = true;
      this.typingNote.textContent = "Typing your own sentence needs WebAssembly, which this browser does not offer; " +
        "the prepared sentences work.";
    } else {
      this.typingNote.textContent = "Runs the real model in your browser; the first sentence downloads it once.";
    }
    form.addEventListener("submit", function (event) { event.preventDefault(); self.runTyped(self.typed.value); });
    root.appendChild(form);
    root.appendChild(this.typingNote);
  };

  function downloading(done, bytes) {
    return "Downloading the model (once): " + Math.round(100 * done) + " % of " + (bytes / 1e6).toFixed(1) + " MB";
  }

  function numberBox(label, control, value, min, max, step) {
    var wrap = document.createElement("label");
    wrap.appendChild(document.createTextNode(label + " "));
    var input = document.createElement("input");
    input.type = "number";
    input.setAttribute("data-control", control);
    input.value = String(value);
    input.min = String(min);
    input.max = String(max);
    input.step = String(step);
    wrap.appendChild(input);
    return { wrap: wrap, input: input };
  }

  // For a GPT the site ships: a prompt, sampling settings, the text it writes, then its attention on that text.
  Explorer.prototype.addGenerating = function (root) {
    var engine = window.attnlabBrowserModel, model = this.data.model;
    if (!this.data.causal || !engine || !engine.generate || engine.models.indexOf(model) < 0) return;
    var self = this, form = document.createElement("form");
    form.className = "attnlab-explorer-typing attnlab-explorer-generating";
    var label = document.createElement("label");
    label.appendChild(document.createTextNode("Prompt "));
    var prompt = document.createElement("input");
    prompt.type = "text";
    prompt.setAttribute("data-control", "prompt");
    prompt.value = "ROMEO: ";
    label.appendChild(prompt);
    var temperature = numberBox("Temperature", "temperature", 0.8, 0, 5, 0.1);
    var topK = numberBox("Top-k", "top-k", 10, 0, 1000, 1);
    var length = numberBox("Characters", "characters", 300, 1, 2000, 1);
    var button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Write";
    [label, temperature.wrap, topK.wrap, length.wrap, button].forEach(function (e) { form.appendChild(e); });
    var written = document.createElement("pre");
    written.className = "attnlab-explorer-written";
    written.setAttribute("aria-label", "Text written by the model");
    written.hidden = true;
    written.tabIndex = 0; // it scrolls when long: reachable from the keyboard
    var note = document.createElement("p");
    note.className = "attnlab-explorer-typing-note";
    note.setAttribute("aria-live", "polite");
    note.textContent = "The model writes in your browser, one character at a time; the first run downloads it once.";
    if (typeof WebAssembly !== "object") {
      Array.prototype.forEach.call(form.elements, function (e) { e.disabled = true; });
      note.textContent = "Writing needs WebAssembly, which this browser does not offer; the prepared texts work.";
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.runGenerate(prompt.value, {
        temperature: Number(temperature.input.value), topK: Number(topK.input.value), length: Number(length.input.value),
      }, written, note);
    });
    root.appendChild(form);
    root.appendChild(written);
    root.appendChild(note);
  };

  // The last 64 characters written are added as a sentence: enough to see its heads at work, few enough to read.
  var WRITTEN_SHOWN = 64;

  Explorer.prototype.runGenerate = function (prompt, options, written, note) {
    var self = this, engine = window.attnlabBrowserModel;
    if (this.generating) this.generating.abort(); // the last request wins
    var control = (this.generating = new AbortController()), started = 0;
    note.textContent = "Starting the model…";
    engine.generate(this.data.model, prompt, {
      temperature: options.temperature, topK: options.topK, length: options.length, signal: control.signal,
      onProgress: function (done, bytes) { note.textContent = downloading(done, bytes); },
      onText: function (text) {
        if (!started) started = performance.now();
        written.hidden = false;
        written.textContent = prompt + text; // text, never markup
        note.textContent = "Writing… " + text.length + " characters";
      },
    }).then(function (out) {
      var seconds = (performance.now() - started) / 1000, whole = prompt + out.text;
      note.textContent = out.text.length + " characters written in this browser" +
        (seconds > 0 && out.text.length > 1 ? ", " + Math.round((out.text.length - 1) / seconds) + " per second" : "") +
        ". Its attention on the last " + Math.min(WRITTEN_SHOWN, whole.length) + " characters is now in the menu.";
      return engine.attend(self.data.model, whole.slice(-WRITTEN_SHOWN)).then(function (maps) {
        if (control !== self.generating) return;
        self.addSentence("Written: …" + whole.slice(-24).replace(/\s+/g, " "), maps);
      });
    }).catch(function (error) {
      if (control === self.generating) note.textContent = "Could not write: " + error.message;
    });
  };

  Explorer.prototype.runTyped = function (text) {
    var self = this, run = (this.typedRuns = (this.typedRuns || 0) + 1); // the last text typed wins
    var note = this.typingNote;
    note.textContent = "Running the model…";
    window.attnlabBrowserModel.attend(this.data.model, text, function (done, bytes) {
      if (run === self.typedRuns) note.textContent = downloading(done, bytes);
    }).then(function (out) {
      if (run !== self.typedRuns) return; // a newer sentence was typed meanwhile
      var short = text.trim().slice(0, 40);
      self.addSentence("Yours: " + short + (text.trim().length > 40 ? "…" : ""), out);
      note.textContent = out.tokens.length + " tokens" +
        (out.truncated ? ", cut to the model's first " + out.tokens.length + " (it reads at most that many)" : "") +
        ", computed in this browser.";
    }).catch(function (error) {
      if (run === self.typedRuns) note.textContent = "Could not run the model: " + error.message;
    });
  };

  Explorer.prototype.draw = function () {
    var s = +this.sentence.element.value, layer = +this.layer.element.value, head = +this.head.element.value;
    var view = +this.view.element.value;
    var names = this.patternsFor(s).filter(function (p) { return p.layer === layer && p.head === head; })
      .map(function (p) { return p.pattern; });
    this.status.textContent = this.data.model.replace(/&amp;/g, "&") + ": layer " + layer + ", head " + head +
      (names.length ? " (found: " + names.join(", ") + ")" : "") +
      (this.data.causal ? "; grey cells are masked: a token cannot see later tokens." : "; every token sees every token.");
    // Same sentence and view: the axes are unchanged, so update only what differs (much faster).
    if (!this.drawn || this.drawn.s !== s) this.showHints(s);
    var same = this.drawn && this.drawn.s === s && this.drawn.view === view;
    if (same && view === 0) {
      Plotly.restyle(this.plot, { z: [this.matrix(s, layer, head)] }, [0]);
    } else if (same && view === 1) {
      Plotly.relayout(this.plot, { shapes: [this.frame(s, layer, head)] });
    } else {
      var figure = [this.oneHead, this.allHeads, this.headView][view].call(this, s, layer, head);
      var needed = view === 0 ? ONE_HEAD_FRAME + MIN_CELL * this.data.sentences[s].tokens.length : 0;
      var scrolls = needed > this.stage.clientWidth;
      this.canvas.style.width = scrolls ? needed + "px" : "";
      this.stage.classList.toggle("attnlab-explorer-scrolls", scrolls);
      if (scrolls) figure.layout.width = needed;  // plotly.js keeps its last width on react otherwise
      var theme = window.attnlabFigureTheme;
      Plotly.react(this.plot, figure.data, theme ? theme.apply(figure.layout) : figure.layout, CONFIG);
      if (!this.listening) { this.listen(); this.listening = true; }
      this.placeLabels(view === 0 ? this.data.sentences[s].tokens : null);
    }
    this.drawn = { s: s, view: view };
  };

  function start() {
    document.querySelectorAll(".attnlab-explorer").forEach(function (root) {
      if (!root.attnlab) new Explorer(root);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
