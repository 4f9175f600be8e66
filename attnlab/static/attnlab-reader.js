/* attnlab (attnlab/sphinxext_reader.py): display equations and tables that scroll can be scrolled from the keyboard,
 * and a table that scrolls says so.
 *
 * A display equation wider than its column scrolls sideways (attnlab.css). A keyboard user can
 * scroll it only if it can take focus (WCAG 2.1.1; axe: scrollable-region-focusable). MathJax's
 * menu made every equation focusable; the book loads MathJax without its menu. This makes the
 * equations that scroll focusable, exactly those, again whenever the window's width changes.
 */
(() => {
  "use strict";
  const MARK = "attnlabScrolls";  // data-attnlab-scrolls: the tabindex is ours

  const scrolls = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1;

  const boxTables = () => {
    // pandas writes <div><style/><table class="dataframe"></div>; that div becomes the scrolling box.
    for (const table of document.querySelectorAll(".cell_output table.dataframe")) {
      table.parentElement.classList.add("attnlab-table-box");
    }
  };

  const update = () => {
    boxTables();
    // Display equations, tables in the theme's scrolling container (a wide table on a phone), and
    // tables a code cell printed (a pandas DataFrame), in a box of their own.
    const boxes = [...document.querySelectorAll('mjx-container[display="true"]'),
                   ...document.querySelectorAll(".pst-scrollable-table-container > table"),
                   ...document.querySelectorAll(".cell_output .attnlab-table-box > table")];
    for (const box of boxes) {
      const scroller = [box, box.parentElement].find((el) => el && scrolls(el));
      if (box.tagName === "TABLE") {  // a wide table says it scrolls (attnlab.css): phones hide the scrollbar
        box.parentElement.classList.toggle("attnlab-table-scrolls", scroller === box.parentElement);
      }
      for (const el of [box, box.parentElement]) {
        if (!el) continue;
        if (el === scroller && !el.hasAttribute("tabindex")) {
          el.setAttribute("tabindex", "0");
          el.dataset[MARK] = "";
        } else if (el !== scroller && MARK in el.dataset) {
          el.removeAttribute("tabindex");
          delete el.dataset[MARK];
        }
      }
    }
  };

  const afterMath = () => {
    const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
    (typeset || Promise.resolve()).then(update);
  };
  if (document.readyState === "complete") afterMath();
  else window.addEventListener("load", afterMath);  // MathJax loads async: it has run by "load"
  let timer;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(update, 150); });
})();
