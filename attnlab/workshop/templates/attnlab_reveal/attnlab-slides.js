// reveal.js with its own layout off: a slide is a plain box the size of the window that scrolls
// when its content is taller. Nothing is CSS-scaled, so a Plotly figure's hover, sliders and menus
// hit where they are drawn (risk 1 of the plan), and a phone gets text at a readable size.
(function () {
  "use strict";

  // A figure drawn while its slide was hidden has the width of nothing (or Plotly's 700 px
  // default): redraw the current slide's figures at their box's width once it is shown.
  function fitFigures() {
    var slide = Reveal.getCurrentSlide();
    if (!slide || !window.Plotly) return;
    slide.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (gd.classList.contains("attnlab-explorer-plot")) {
        // The explorer sizes its map to the sentence, but placed its token labels (HTML beside the
        // map) while its slide was hidden, 0 px wide: forget that placement (the cache it keeps on
        // the labels' box) and have it draw the chosen sentence again, as choosing it would.
        var labels = gd.parentElement.querySelector(".attnlab-explorer-labels");
        var sentence = gd.closest(".attnlab-explorer").querySelector("select");
        if (labels && sentence && !labels.placedOnSlide) {
          labels.geometry = null;
          labels.placedOnSlide = true;
          sentence.dispatchEvent(new Event("change"));
        }
        return;
      }
      if (gd._fullLayout && gd.clientWidth > 0 && Math.abs(gd._fullLayout.width - gd.clientWidth) > 1) {
        Plotly.Plots.resize(gd);
      }
    });
  }

  Reveal.on("ready", fitFigures);
  Reveal.on("slidechanged", fitFigures);
  Reveal.on("resize", fitFigures);
  Reveal.initialize({
    hash: true,
    disableLayout: true,
    controls: true,
    progress: true,
    slideNumber: "c/t",
    transition: "none",  // a figure resized mid-transition would flicker
    // reveal.js's swipes cancel every touch move, so a tall slide could not scroll on a phone and
    // a drag on a figure's slider would turn the page: phones use the arrows, as the projector does.
    touch: false,
    plugins: [RevealNotes],
  });
})();
