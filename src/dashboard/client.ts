/**
 * The pages' inline scripts, as plain JavaScript strings: the service ships no bundle and serves
 * no assets. Written for current browsers (ES2020, fetch, URLSearchParams), wrapped in an IIFE so
 * they leave no globals. The run page's script is in client-run.ts; its number formats and chart
 * formula mirror html.ts, so what the page redraws while polling matches what the server
 * rendered; the e2e browser tests watch them together.
 */
import { COMMON } from "./client-common.js";

export { RUN_SCRIPT } from "./client-run.js";

/** The runs list: while a run in it is live, fetch the page again and swap the list in. */
export const RUNS_SCRIPT = `(function () {
${COMMON}
var main = document.getElementById("main");
function isLivePage() {
  var el = document.getElementById("runs");
  return !!el && el.getAttribute("data-live") === "true";
}
function refresh() {
  if (!isLivePage()) return;
  if (document.hidden) return setTimeout(refresh, 3000);
  // Not while someone is choosing filters: the swap would take their half-typed value away.
  var active = document.activeElement;
  if (active && active.closest && active.closest("#filters")) return setTimeout(refresh, 3000);
  fetch(location.href, { headers: headers({ accept: "text/html" }), cache: "no-store" })
    .then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.text();
    })
    .then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var next = doc.getElementById("main");
      if (next) {
        main.innerHTML = next.innerHTML;
        document.title = doc.title;
        localizeTimes(main);
        carryToken(main);
      }
      setConn(isLivePage() ? "live · updates every 3 s" : "");
      setTimeout(refresh, 3000);
    })
    .catch(function (e) {
      setConn("cannot refresh: " + e.message + " · retrying", true);
      setTimeout(refresh, 6000);
    });
}
if (isLivePage()) {
  setConn("live · updates every 3 s");
  setTimeout(refresh, 3000);
}
// The filters apply as soon as one is chosen; the button is there for keyboards and no script.
document.addEventListener("change", function (ev) {
  var f = ev.target && ev.target.form;
  if (f && f.id === "filters" && ev.target.tagName === "SELECT") f.requestSubmit();
});
})();`;

/** The schedules page: "Run now" fires a schedule for the current minute, after asking. */
export const SCHEDULES_SCRIPT = `(function () {
${COMMON}
var boot = JSON.parse(document.getElementById("boot").textContent);
document.addEventListener("click", function (ev) {
  var btn = ev.target.closest && ev.target.closest("button[data-action=fire]");
  if (!btn) return;
  var name = btn.getAttribute("data-schedule");
  var row = btn.closest("tr");
  var msg = row.querySelector("[data-fire-msg]");
  if (!confirm("Start a run of schedule " + name + " now (job " + btn.getAttribute("data-job") + ", with the schedule's arguments)? It is the schedule's run for this minute: pressed again within the minute, it starts nothing more.")) return;
  btn.disabled = true;
  msg.className = "fire-msg muted";
  msg.textContent = "Starting\\u2026";
  // No X-CloudScheduler-ScheduleTime: the service takes its own current minute.
  fetch(boot.base + "/v1/schedules/" + encodeURIComponent(name) + ":fire", { method: "POST", headers: headers() })
    .then(function (res) {
      if (!res.ok) return apiError(res).then(function (e) { throw e; });
      return res.json().then(function (r) {
        msg.className = "fire-msg";
        msg.textContent = res.status === 202 ? "Started run " : "This minute's run had already started: ";
        var a = el("a", "mono", r.runId);
        a.href = withToken(boot.base + "/runs/" + encodeURIComponent(r.runId));
        a.setAttribute("data-run-link", "");
        msg.appendChild(a);
        if (r.launchError) msg.appendChild(el("span", "fail", " (its first launch failed; reconcile retries it: " + r.launchError + ")"));
      });
    })
    .catch(function (e) {
      msg.className = "fire-msg fail";
      msg.textContent = "Run now failed: " + e.message;
    })
    .finally(function () { btn.disabled = false; });
});
})();`;

/**
 * The sign-in page: a token this browser kept from an earlier visit is tried once (the page is
 * opened again with it); a token the service refused is forgotten, so it is not tried again.
 */
export const SIGN_IN_SCRIPT = `(function () {
"use strict";
var TOKEN_KEY = "shardrun.token";
var params = new URLSearchParams(location.search);
try {
  if (params.get("token")) localStorage.removeItem(TOKEN_KEY);
  else {
    var kept = localStorage.getItem(TOKEN_KEY);
    if (kept) {
      params.set("token", kept);
      location.replace(location.pathname + "?" + params.toString() + location.hash);
    }
  }
} catch (e) {}
})();`;

/** A page with nothing live on it (not found, an error): links keep the token, times are local. */
export const NOTICE_SCRIPT = `(function () {
${COMMON}
})();`;

/**
 * A run being planned: polls its status every second and loads the page again once it is no
 * longer planning (the run page then) or is gone (the page says why). Cancel stops the plan.
 */
export const PLANNING_SCRIPT = `(function () {
${COMMON}
var boot = JSON.parse(document.getElementById("boot").textContent);
var done = false;
function again(why) {
  if (done) return;
  done = true;
  setConn(why + " \\u00b7 loading");
  setTimeout(function () { location.reload(); }, 300);
}
function poll() {
  if (done) return;
  fetch(boot.api, { headers: headers(), cache: "no-store" })
    .then(function (res) {
      // Gone: its plan failed or was cancelled; the page says which.
      if (res.status === 404) return again("planning ended");
      if (!res.ok) return apiError(res).then(function (e) { throw e; });
      return res.json().then(function (st) {
        if (st.state !== "planning") return again("planned");
        var n = document.querySelector('[data-f="items-read"]');
        if (n && st.items && st.items.total) n.textContent = Number(st.items.total).toLocaleString("en-US") + " items read so far.";
        setConn("planning \\u00b7 checked " + new Date().toLocaleTimeString());
        setTimeout(poll, 1000);
      });
    })
    .catch(function (e) {
      setConn("cannot reach the API (" + e.message + ") \\u00b7 retrying", true);
      setTimeout(poll, 3000);
    });
}
document.addEventListener("click", function (ev) {
  var b = ev.target && ev.target.closest && ev.target.closest('button[data-action="cancel"]');
  if (!b) return;
  if (!confirm("Cancel this run while it is planned? Nothing of it is kept.")) return;
  var msg = document.getElementById("action-msg");
  b.disabled = true;
  msg.style.color = "var(--muted)";
  msg.textContent = "Cancelling\\u2026";
  fetch(boot.api + ":cancel", { method: "POST", headers: headers({ "content-type": "application/json" }), body: "{}" })
    .then(function (res) {
      if (res.ok) return again("cancelled");
      return apiError(res).then(function (e) { throw e; });
    })
    .catch(function (e) {
      msg.style.color = "";
      msg.textContent = "Cancel failed: " + e.message;
      b.disabled = false;
    });
});
if (boot.live) {
  setConn("planning \\u00b7 checking every second");
  setTimeout(poll, 1000);
}
})();`;
