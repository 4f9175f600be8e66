/* attnlab (attnlab/sphinxext_reader.py): search results show math as text, not raw LaTeX.
 *
 * Sphinx builds each result's summary from the text of the found page's HTML
 * (Search.htmlToText in searchtools.js), where math is still LaTeX: "\(\operatorname{softmax}(s
 * / \tau)\)". MathJax typesets it only on the page itself. This rewrites the LaTeX of the page's
 * math elements (.math) as plain text, "softmax(s / τ)", before Sphinx reads it.
 */
(() => {
  "use strict";
  if (typeof Search === "undefined" || typeof Search.htmlToText !== "function") return;

  const SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", eta: "η",
    theta: "θ", lambda: "λ", mu: "μ", pi: "π", rho: "ρ", sigma: "σ", tau: "τ", phi: "φ",
    varphi: "φ", psi: "ψ", omega: "ω", Gamma: "Γ", Delta: "Δ", Theta: "Θ", Lambda: "Λ", Pi: "Π",
    Sigma: "Σ", Phi: "Φ", Psi: "Ψ", Omega: "Ω",
    sum: "Σ", prod: "∏", infty: "∞", cdot: "·", times: "×", to: "→", rightarrow: "→",
    mapsto: "↦", leftarrow: "←", in: "∈", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠",
    neq: "≠", approx: "≈", sim: "∼", propto: "∝", pm: "±", top: "ᵀ", ldots: "…", dots: "…",
    cdots: "⋯", lVert: "‖", rVert: "‖", Vert: "‖", lvert: "|", rvert: "|", mid: "|",
    langle: "⟨", rangle: "⟩", partial: "∂", nabla: "∇", odot: "⊙", otimes: "⊗", oplus: "⊕",
  };
  // Commands whose argument is shown as it is: \operatorname{softmax} → softmax.
  const KEEP_ARGUMENT = /\\(?:operatorname|mathrm|mathbf|mathit|mathsf|mathcal|boldsymbol|text|textrm|textbf|textit)\*?\{([^{}]*)\}/g;
  const grouped = (text) => (/^[\w.ᵀ√]+$/u.test(text) ? text : `(${text})`);

  const texToText = (tex) => {
    let s = tex.trim().replace(/^(\\\(|\\\[|\$\$?)|(\\\)|\\\]|\$\$?)$/g, "");
    s = s.replace(/\\(?:begin|end)\{[^{}]*\}/g, " ").replace(/\^\s*(?:\{\\top\}|\\top)/g, "ᵀ");
    s = s.replace(/\\mathbb\{R\}/g, "ℝ");
    for (let pass = 0; pass < 6; pass++) {  // innermost braces first: \frac{QK}{\sqrt{d_k}}
      s = s.replace(KEEP_ARGUMENT, "$1")
        .replace(/\\(?:under|over)brace\{([^{}]*)\}(?:\s*[_^]\{[^{}]*\})?/g, "$1")  // its label is for the eye
        .replace(/\\sqrt\{([^{}]*)\}/g, (_, x) => `√${grouped(x.trim())}`)
        .replace(/\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}/g, (_, a, b) => `${grouped(a.trim())}/${grouped(b.trim())}`);
    }
    s = s.replace(/\\(?:left|right|bigg?|Bigg?)(?![A-Za-z])/g, "")
      .replace(/\\!/g, "")
      .replace(/\\(?:q?quad|[,;: ])|~/g, " ")
      .replace(/\\\\|&/g, " ")
      .replace(/\\([A-Za-z]+)/g, (_, name) => SYMBOLS[name] ?? name)
      .replace(/[{}]/g, "");
    return s.replace(/\s+/g, " ").trim();
  };

  const htmlToText = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const page = new DOMParser().parseFromString(htmlString, "text/html");
    for (const math of page.querySelectorAll(".math")) math.textContent = ` ${texToText(math.textContent)} `;
    return htmlToText(page.documentElement.outerHTML, anchor);
  };
  Search.attnlabTexToText = texToText;  // for the tests
})();
