// Renders the pages' math (pymdownx.arithmatex's generic output) with the
// KaTeX copy the build puts in assets/katex/, as MathML: the browser draws
// it with no font or stylesheet to fetch, so the site works from a folder.
// A display formula wider than the column is scaled down to fit (to 70% at
// most; below that it scrolls, see extra.css), again when the window is
// resized.
(function () {
  var MIN_SCALE = 0.7;

  function fit(el) {
    el.style.fontSize = "";
    var avail = el.clientWidth, need = el.scrollWidth;
    if (avail > 0 && need > avail) {
      el.style.fontSize = Math.max(MIN_SCALE, 0.98 * avail / need) + "em";
    }
  }

  function fitAll() {
    document.querySelectorAll("div.arithmatex").forEach(fit);
  }

  function render() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      var tex = el.textContent.trim();
      var display = tex.indexOf("\\[") === 0;
      if (display || tex.indexOf("\\(") === 0) tex = tex.slice(2, -2);
      katex.render(tex, el, {displayMode: display, output: "mathml",
                             throwOnError: false, strict: "ignore"});
    });
    fitAll();
    var pending = null;
    window.addEventListener("resize", function () {
      if (pending) window.cancelAnimationFrame(pending);
      pending = window.requestAnimationFrame(fitAll);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
