// Live job progress falls back to polling when server-sent events cannot get through
// (a buffering proxy, a browser without EventSource).
(function () {
  function watchOf(event) {  // the live progress an htmx event came from, if any
    return event.target.closest ? event.target.closest(".job-watch") : null;
  }

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
    var watch = watchOf(e);
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
      // Asked as htmx asks, so that a browser no longer signed in is sent to the login page as a whole
      // (HX-Redirect, accounts/middleware.py) rather than given the login form to show in the progress' place.
      var headers = {"HX-Request": "true", "HX-Current-URL": window.location.href};
      fetch(url, {credentials: "same-origin", headers: headers}).then(function (r) {
        var away = r.headers.get("HX-Redirect");
        if (away) { clearInterval(timer); window.location.href = away; throw new Error("signed out"); }
        return r.text();
      }).then(function (html) {
        watch.innerHTML = html;
        htmx.process(watch);
        followFactsOf(watch);
        var state = watch.querySelector("[data-state]");
        if (state && ["succeeded", "failed", "cancelled"].indexOf(state.dataset.state) >= 0) clearInterval(timer);
      }).catch(function () { /* signed out (on its way to the login page), or no answer: the next tick asks again */ });
    }, 1000);
  }
  document.addEventListener("htmx:sseError", function (e) {
    var watch = watchOf(e);
    if (watch) poll(watch);
  });
  // The stream ends with the job; one that ends while the job still runs (Redis went away: the server sends the
  // last state it read and ends) leaves the page to poll, so that it never shows "running" for ever.
  document.addEventListener("htmx:sseClose", function (e) {
    var watch = watchOf(e);
    var snap = watch && watch.querySelector(".progress[data-state]");
    if (snap && ["queued", "running"].indexOf(snap.dataset.state) >= 0) poll(watch);
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) document.querySelectorAll(".job-watch").forEach(poll);
  });
})();

// The header's language switch changes as soon as a language is picked (its button serves without JavaScript).
document.addEventListener("change", function (e) {
  if (e.target.matches && e.target.matches("select[data-autosubmit]")) e.target.form.requestSubmit();
});

// An htmx request the server refused (4xx, 5xx) or that got no answer is said at the top of the page, in the
// server's own words where its error page or JSON has them: htmx itself swaps nothing then, and the click looked
// ignored. The box's texts come translated from base.html.
(function () {
  function serverWords(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    try {
      if (type.indexOf("application/json") === 0) {
        var data = JSON.parse(xhr.responseText);
        return data.message || data.error || "";
      }
      if (type.indexOf("text/html") === 0) {
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var title = page.querySelector("main h1"), reason = page.querySelector("main h1 + p");
        return [title && title.textContent.trim(), reason && reason.textContent.trim()].filter(Boolean).join(": ");
      }
    } catch (err) { /* not what it said it was: the status alone */ }
    return "";
  }
  var failed = null;  // the element whose request the box speaks of
  function say(elt, text) {
    var box = document.getElementById("request-problem");
    if (!box) return;
    failed = elt;
    box.textContent = text;
    box.hidden = false;
    box.scrollIntoView({block: "nearest"});
  }
  document.addEventListener("htmx:responseError", function (e) {
    var box = document.getElementById("request-problem"), xhr = e.detail.xhr;
    if (box) say(e.detail.elt, serverWords(xhr) || box.dataset.refused + " (HTTP " + xhr.status + ")");
  });
  document.addEventListener("htmx:sendError", function (e) {
    var box = document.getElementById("request-problem");
    if (box) say(e.detail.elt, box.dataset.unreachable);
  });
  document.addEventListener("htmx:afterRequest", function (e) {  // that element's next try went through
    var box = document.getElementById("request-problem");
    if (box && e.detail.successful && e.detail.elt === failed) box.hidden = true;
  });
})();

// A plain form whose action takes something away (a password, an account's access, a grant, a token) asks first:
// data-confirm holds the question (htmx forms use hx-confirm).
document.addEventListener("submit", function (e) {
  var question = e.target.dataset ? e.target.dataset.confirm : "";
  if (question && !window.confirm(question)) e.preventDefault();
});

// A choice that exists for some formats only (data-formats, volumes/forms.FormatBoundRadios) is off while the
// form's format is another; one that was chosen falls back to the first choice.
(function () {
  function follow(form) {
    var format = form.querySelector("select[name=format]");
    if (!format) return;
    form.querySelectorAll("input[data-formats]").forEach(function (input) {
      input.disabled = input.dataset.formats.split(" ").indexOf(format.value) < 0;
      if (input.disabled && input.checked) {
        var first = form.querySelector("input[name='" + input.name + "']");
        if (first) first.checked = true;
      }
    });
  }
  document.addEventListener("change", function (e) {
    if (e.target.name === "format" && e.target.form) follow(e.target.form);
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(follow);
  });
})();
