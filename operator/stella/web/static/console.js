// Stella console: live phases without a reload. Served by the console itself; the
// Content-Security-Policy allows no other script. Polls /api/pipeline every 2 s and
// updates every [data-cell]; a new Release on the pipelines page reloads the page; a
// Release page swaps in its fresh timeline when a phase changed.
"use strict";
(function () {
  var root = document.querySelector("[data-poll]");
  if (!root) { return; }
  var classes = {
    Deployed: "ok", Live: "live", Deploying: "busy", WaitingForApproval: "wait",
    WaitingForPrerequisites: "idle", Pending: "idle", Frozen: "frozen", Failed: "bad",
    Rejected: "bad", Halted: "bad", Blocked: "bad", Superseded: "idle"
  };
  var url = root.getAttribute("data-poll");
  var isPipeline = root.id === "pipeline";
  function badge(phase) {
    var span = document.createElement("span");
    span.className = "phase " + (classes[phase] || "idle");
    span.setAttribute("data-phase", phase);
    span.textContent = phase;
    return span;
  }
  // A changed phase on a page that shows more than phases (a Release's timeline: its
  // messages, approvals, forms): fetch the page again and swap that part in place.
  function refreshPart() {
    fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById(root.id);
        if (fresh) { root.replaceChildren.apply(root, Array.from(fresh.childNodes)); }
      })
      .catch(function () { /* the next change tries again */ });
  }
  function apply(data) {
    if (data.unchanged) { return; }
    var seen = {};
    var changed = false;
    document.querySelectorAll("[data-cell]").forEach(function (cell) {
      var key = cell.getAttribute("data-cell");
      seen[key] = true;
      var phase = data.cells[key];
      if (phase === undefined) { return; }
      var current = cell.querySelector(".phase");
      if (!current || current.getAttribute("data-phase") !== phase) {
        cell.replaceChildren(badge(phase));
        changed = true;
      }
    });
    if (isPipeline) {
      for (var key in data.cells) {
        if (!seen[key]) { window.location.reload(); return; }
      }
    }
    if (changed && root.hasAttribute("data-refresh")) { refreshPart(); }
    root.setAttribute("data-revision", String(data.revision));
  }
  function poll() {
    var since = root.getAttribute("data-revision") || "";
    fetch(url + "?since=" + encodeURIComponent(since),
      { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (resp.status === 401) {
          window.location.assign("/login?m=" + (resp.headers.get("X-Stella-Login") || "expired"));
          return null;
        }
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
