// Stella console: live phases without a reload. Served by the console itself; the
// Content-Security-Policy allows no other script. Polls /api/pipeline every 2 s and
// updates every [data-cell]; a new Release on the pipelines page reloads the page.
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
  function apply(data) {
    var seen = {};
    document.querySelectorAll("[data-cell]").forEach(function (cell) {
      var key = cell.getAttribute("data-cell");
      seen[key] = true;
      var phase = data.cells[key];
      if (phase === undefined) { return; }
      var current = cell.querySelector(".phase");
      if (!current || current.getAttribute("data-phase") !== phase) {
        cell.replaceChildren(badge(phase));
      }
    });
    if (isPipeline) {
      for (var key in data.cells) {
        if (!seen[key]) { window.location.reload(); return; }
      }
    }
    root.setAttribute("data-revision", String(data.revision));
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (resp.status === 401) { window.location.assign("/login?m=expired"); return null; }
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
