// Live job progress falls back to polling when server-sent events cannot get through
// (a buffering proxy, a browser without EventSource).
(function () {
  // The job page's details and log (#job-N-facts) are reloaded when the live progress is ahead of them: a later
  // state or more log lines (progress alone, several a second, does not reload them). Checked again once they
  // are reloaded, since an event that came meanwhile could not queue a reload on the element being replaced.
  var STAGE = {queued: 0, running: 1};
  function stage(state) { return state in STAGE ? STAGE[state] : 2; }
  function followFacts(snap) {
    var facts = document.getElementById(snap.id.replace(/-progress$/, "-facts"));
    if (facts && facts.getAttribute("hx-get") && (stage(snap.dataset.state) > stage(facts.dataset.state) ||
        Number(snap.dataset.logLines) > Number(facts.dataset.logLines))) {
      htmx.trigger(facts, "job-changed");
    }
  }
  function followFactsOf(watch) {
    var snap = watch.querySelector(".progress[data-state]");
    if (snap) followFacts(snap);
  }
  document.addEventListener("htmx:sseMessage", function (e) {
    var watch = e.target.closest ? e.target.closest(".job-watch") : null;
    if (watch) followFactsOf(watch);
  });
  htmx.onLoad(function (elt) {
    var match = elt.id && /^job-(\d+)-facts$/.exec(elt.id);
    var snap = match && document.getElementById("job-" + match[1] + "-progress");
    if (snap) followFacts(snap);
  });

  function poll(watch) {
    if (watch.dataset.polling) return;
    watch.dataset.polling = "1";
    var url = watch.dataset.progressUrl;
    var timer = setInterval(function () {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
        watch.innerHTML = html;
        htmx.process(watch);
        followFactsOf(watch);
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
