// The ipywidgets HTML manager typesets labels with MathJax 2's API (MathJax.Hub.Queue),
// while the book loads MathJax 3, which has no Hub: without this, every widget page logs
// "Cannot read properties of undefined (reading 'Queue')". Route those calls to MathJax 3.
(function () {
  var mathjax = (window.MathJax = window.MathJax || {});
  if (mathjax.Hub) return;
  mathjax.Hub = {
    Queue: function (job) {
      var element = Array.isArray(job) ? job[2] : undefined;
      var mj = window.MathJax;
      if (mj.startup && mj.startup.promise && mj.typesetPromise) {
        mj.startup.promise.then(function () {
          return mj.typesetPromise(element ? [element] : undefined);
        });
      }
    },
  };
})();
