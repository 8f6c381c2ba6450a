// ipywidgets' HTML widget manager (embed-amd.js, @jupyter-widgets/html-manager 1.0.15)
// typesets widget labels with the MathJax 2 API: MathJax.Hub.Queue(["Typeset", Hub, el]).
// The book loads MathJax 3, which has no Hub, so every widget label threw a TypeError.
// This maps that one call onto MathJax 3. It must load before embed-amd.js.
(function () {
  function queue(job) {
    var element = Array.isArray(job) ? job[2] : undefined;
    var mathjax = window.MathJax;
    if (mathjax && mathjax.startup && mathjax.startup.promise && mathjax.typesetPromise) {
      mathjax.startup.promise
        .then(function () { return mathjax.typesetPromise(element ? [element] : undefined); })
        .catch(function (err) { console.warn("MathJax typeset failed", err); });
    }
  }
  function install() {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = { Queue: queue };
    }
  }
  // window.MathJax is first Sphinx's configuration object, then MathJax 3 replaces it when
  // its (deferred) script has run, before DOMContentLoaded. Widgets render on "load".
  install();
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
