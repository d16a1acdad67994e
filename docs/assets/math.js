// Renders the pages' math (pymdownx.arithmatex's generic output) with the
// KaTeX copy the build puts in assets/katex/, as MathML: the browser draws
// it with no font or stylesheet to fetch, so the site works from a folder.
(function () {
  function render() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      var tex = el.textContent.trim();
      var display = tex.indexOf("\\[") === 0;
      if (display || tex.indexOf("\\(") === 0) tex = tex.slice(2, -2);
      katex.render(tex, el, {displayMode: display, output: "mathml",
                             throwOnError: false, strict: "ignore"});
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
