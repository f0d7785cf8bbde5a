// Upload a file into a volume: chunks of the File (Blob.slice), all-zero chunks sent as holes,
// retries with backoff, resume from what the server has; then the job's live progress.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var CHUNK = parseInt(form.dataset.chunkBytes, 10) || 8 * 1024 * 1024;
  var MAX_ATTEMPTS = 8;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  var fileInput = document.getElementById("upload-file");
  var errors = document.getElementById("upload-errors");
  var startButton = document.getElementById("upload-start");
  var stopButton = document.getElementById("upload-cancel");
  var transfer = document.getElementById("upload-transfer");
  var bar = document.getElementById("upload-bar");
  var numbers = document.getElementById("upload-numbers");
  var status = document.getElementById("upload-status");
  var jobBox = document.getElementById("upload-job");
  var stopped = false;
  // Django's JavaScript catalog (jsi18n, loaded before this file) translates; without it the text stays English.
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return String(values[name]); });
  };
  var POINT = (window.get_format && window.get_format("DECIMAL_SEPARATOR")) || ".";

  fileInput.addEventListener("change", function () {
    var name = form.elements.volume;
    if (name && name.type !== "hidden" && !name.value && fileInput.files[0]) {
      name.value = fileInput.files[0].name.replace(/[^A-Za-z0-9._+-]/g, "_").replace(/^[^A-Za-z0-9]+/, "");
    }
  });

  function showErrors(messages) {
    errors.textContent = "";
    messages.forEach(function (m) { var li = document.createElement("li"); li.textContent = m; errors.appendChild(li); });
  }

  function errorList(body) {
    var list = [];
    if (body && body.errors) {
      Object.keys(body.errors).forEach(function (field) {
        body.errors[field].forEach(function (m) { list.push(field === "__all__" ? m : field + ": " + m); });
      });
    }
    if (!list.length) list.push((body && body.error) || gettext("The server refused the upload."));
    return list;
  }

  function decimal(x) { return x.toFixed(1).replace(".", POINT); }

  // A size as the pages and the job's messages write it (virt/units.py size_parts): rounded to one decimal
  // below 100 and to whole units above, carried into the next unit when it rounds up to 1024.
  function sizeText(n) {
    var units = ["bytes", "KiB", "MiB", "GiB", "TiB"], i = 0;
    n = Math.round(n);
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    if (!i) return interpolate(gettext("%(count)s bytes"), {count: n}, true);
    var places = Math.abs(n) < 100 ? 1 : 0, shown = Number(n.toFixed(places));
    if (places && Math.abs(shown) >= 100) { places = 0; shown = Math.round(n); }
    if (Math.abs(shown) >= 1024 && i < units.length - 1) { n /= 1024; i++; places = 1; shown = Number(n.toFixed(1)); }
    return shown.toFixed(places).replace(".", POINT) + " " + units[i];
  }

  function isAllZero(buffer) {
    // Compare 32-bit words, then the few trailing bytes.
    var words = new Uint32Array(buffer, 0, buffer.byteLength >> 2);
    for (var i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    var tail = new Uint8Array(buffer, words.length << 2);
    for (var j = 0; j < tail.length; j++) if (tail[j] !== 0) return false;
    return true;
  }

  function covered(received, start, end) {
    return received.some(function (r) { return r[0] <= start && end <= r[1]; });
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function request(method, url, body, headers) {
    var h = {"X-CSRFToken": csrf, "Accept": "application/json"};
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(url, {method: method, body: body, headers: h, credentials: "same-origin"});
  }

  // Retries network errors and 5xx with backoff; a 4xx is the server's answer and stops.
  async function withRetry(what, send) {
    for (var attempt = 1; ; attempt++) {
      if (stopped) throw new Error(gettext("Stopped."));
      var response = null;
      try { response = await send(); } catch (e) { response = null; }
      if (response && response.status < 500) {
        var body = await response.json().catch(function () { return {}; });
        if (!response.ok) { var err = new Error(errorList(body).join(" ")); err.body = body; throw err; }
        return body;
      }
      if (attempt >= MAX_ATTEMPTS) {
        // Translators: what is one of "creating the upload", "a hole", "a chunk", "completing".
        throw new Error(interpolate(gettext("%(what)s failed after %(attempts)s attempts; choose the file again to resume."),
          {what: what, attempts: attempt}, true));
      }
      var delay = Math.min(30000, 500 * Math.pow(2, attempt - 1));
      // Translators: what is one of "creating the upload", "a hole", "a chunk", "completing".
      status.textContent = interpolate(gettext("connection problem, retrying %(what)s in %(seconds)s s…"),
        {what: what, seconds: Math.round(delay / 1000)}, true);
      await sleep(delay);
    }
  }

  function resumeKey(file) {
    return "virtstorage-upload:" + [form.elements.pool.value, form.elements.mode.value, form.elements.volume.value,
      file.name, file.size, file.lastModified].join("|");
  }

  async function findOrCreate(file) {
    var key = resumeKey(file);
    var known = localStorage.getItem(key);
    if (known) {
      try {
        var r = await fetch(known, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
        if (r.ok) {
          var state = await r.json();
          if (state.size === file.size && (state.state === "receiving" || state.state === "failed")) return state;
        }
      } catch (e) { /* the server will tell again below */ }
      localStorage.removeItem(key);
    }
    var data = new FormData(form);
    data.delete("file");
    data.set("size", String(file.size));
    data.set("filename", file.name);
    var created = await withRetry(gettext("creating the upload"), function () { return request("POST", form.dataset.createUrl, data); });
    localStorage.setItem(key, created.url);
    return created;
  }

  function show(done, total, started, sentBytes) {
    var pct = total ? 100 * done / total : 100;
    bar.style.width = pct.toFixed(1) + "%";
    bar.parentElement.setAttribute("aria-valuenow", Math.round(pct));
    var secs = (Date.now() - started) / 1000;
    numbers.textContent = decimal(pct) + "% · " +
      interpolate(gettext("%(done)s of %(total)s"), {done: sizeText(done), total: sizeText(total)}, true) +
      (secs > 0.5 ? " · " + interpolate(gettext("%(rate)s/s sent"), {rate: sizeText(sentBytes / secs)}, true) : "");
  }

  function showJob(html) {  // the job's live progress (htmx SSE) under the transfer's own bar
    jobBox.innerHTML = html;
    if (window.htmx) htmx.process(jobBox);
  }

  async function run(file) {
    var upload = await findOrCreate(file);
    transfer.hidden = false;
    // Into a new volume the job starts now and writes chunks as they arrive.
    if (upload.watch_html) showJob(upload.watch_html);
    var done = upload.received_bytes, started = Date.now(), sent = 0;
    status.textContent = done ? interpolate(gettext("resuming at %(size)s"), {size: sizeText(done)}, true)
      : gettext("sending");
    show(done, file.size, started, sent);
    // Runs of all-zero chunks are declared as one hole each, when the run ends: a request costs the
    // server more than a chunk's worth of checking, and a sparse image is mostly such runs.
    var hole = null;
    async function flushHole() {
      if (!hole) return;
      var url = upload.chunks_url + "?offset=" + hole.start + "&hole=" + (hole.end - hole.start);
      hole = null;
      var state = await withRetry(gettext("a hole"), function () { return request("PUT", url, null); });
      done = state.received_bytes;
    }
    for (var offset = 0; offset < file.size; offset += CHUNK) {
      if (stopped) throw new Error(gettext("Stopped: choose the same file again to resume."));
      var end = Math.min(file.size, offset + CHUNK);
      if (covered(upload.received, offset, end)) { await flushHole(); continue; }
      var buffer = await file.slice(offset, end).arrayBuffer();
      if (isAllZero(buffer)) {
        if (hole && hole.end === offset) hole.end = end; else { await flushHole(); hole = {start: offset, end: end}; }
        show(Math.max(done, end), file.size, started, sent);
        continue;
      }
      await flushHole();
      var url = upload.chunks_url + "?offset=" + offset;
      var state = await withRetry(gettext("a chunk"), function () {
        return request("PUT", url, buffer, {"Content-Type": "application/octet-stream"});
      });
      sent += end - offset;
      done = state.received_bytes;
      status.textContent = gettext("sending");
      show(done, file.size, started, sent);
    }
    await flushHole();
    show(file.size, file.size, started, sent);
    status.textContent = gettext("all bytes sent; starting the job");
    var result = await withRetry(gettext("completing"), function () { return request("POST", upload.complete_url, null); });
    localStorage.removeItem(resumeKey(file));
    status.textContent = gettext("sent; the job finishes the volume");
    if (!upload.watch_html) showJob(result.watch_html);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = fileInput.files[0];
    if (!file) { showErrors([gettext("Choose a file.")]); return; }
    if (!file.size) { showErrors([gettext("The file is empty: there is nothing to upload.")]); return; }
    showErrors([]);
    stopped = false;
    startButton.disabled = true;
    stopButton.hidden = false;
    run(file).catch(function (e) {
      showErrors(e.body ? errorList(e.body) : [e.message]);
      status.textContent = gettext("stopped");
    }).finally(function () {
      startButton.disabled = false;
      stopButton.hidden = true;
    });
  });
  stopButton.addEventListener("click", function () { stopped = true; });
})();
