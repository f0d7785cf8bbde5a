// Live job progress falls back to polling when server-sent events cannot get through
// (a buffering proxy, a browser without EventSource).
(function () {
  function poll(watch) {
    if (watch.dataset.polling) return;
    watch.dataset.polling = "1";
    var url = watch.dataset.progressUrl;
    var timer = setInterval(function () {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
        watch.innerHTML = html;
        htmx.process(watch);
        var state = watch.querySelector("[data-state]");
        if (state && ["succeeded", "failed", "cancelled"].indexOf(state.dataset.state) >= 0) clearInterval(timer);
      });
    }, 1000);
  }
  document.addEventListener("htmx:sseError", function (e) {
    var watch = e.target.closest ? e.target.closest(".job-watch") : null;
    if (watch) poll(watch);
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) document.querySelectorAll(".job-watch").forEach(poll);
  });
})();

// The header's language switch changes as soon as a language is picked (its button serves without JavaScript).
document.addEventListener("change", function (e) {
  if (e.target.matches && e.target.matches("select[data-autosubmit]")) e.target.form.requestSubmit();
});
