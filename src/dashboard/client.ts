/**
 * The pages' inline scripts, as plain JavaScript strings: the service ships no bundle and serves
 * no assets. Written for current browsers (ES2020, fetch, URLSearchParams), wrapped in an IIFE so
 * they leave no globals. The number formats and the chart formula mirror html.ts, so
 * what the page redraws while polling matches what the server rendered; the e2e browser test
 * watches them together.
 */

/** Token handling, times in the reader's zone, and the connection line: both pages use it. */
const COMMON = `
"use strict";
var TOKEN_KEY = "shardrun.token";
var urlToken = new URLSearchParams(location.search).get("token");
function token() {
  try {
    if (urlToken) localStorage.setItem(TOKEN_KEY, urlToken);
    return urlToken || localStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    return urlToken || "";
  }
}
function headers(extra) {
  var h = Object.assign({ accept: "application/json" }, extra || {});
  var t = token();
  if (t) h.authorization = "Bearer " + t;
  return h;
}
function localizeTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (el) {
    var iso = el.getAttribute("datetime");
    var d = new Date(iso);
    if (isNaN(d.getTime())) return;
    el.title = iso;
    el.textContent = d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  });
}
// A page opened with ?token= passes it on, so that pages behind the token keep working.
function carryToken(root) {
  if (!urlToken) return;
  root.querySelectorAll("a[data-internal]").forEach(function (a) {
    var u = new URL(a.getAttribute("href"), location.href);
    u.searchParams.set("token", urlToken);
    a.setAttribute("href", u.pathname + u.search + u.hash);
  });
}
function setConn(text, bad) {
  var el = document.getElementById("conn");
  if (!el) return;
  el.textContent = text;
  el.className = bad ? "conn bad" : "conn";
}
localizeTimes(document);
carryToken(document);
`;

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
  fetch(location.href, { headers: { accept: "text/html" }, cache: "no-store" })
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
})();`;

/** A run page: poll the status API while the run is live; the buttons call the API. */
export const RUN_SCRIPT = `(function () {
${COMMON}
var boot = JSON.parse(document.getElementById("boot").textContent);
var W = boot.chart.w, H = boot.chart.h;
var points = boot.history.slice();
var wasLive = boot.live;
var lastLaunches = "";

function fmtInt(n) { return Number(n).toLocaleString("en-US"); }
function fmtUsd(usd) {
  if (!usd) return "$0";
  if (usd >= 100) return "$" + usd.toFixed(0);
  if (usd >= 0.01) return "$" + usd.toFixed(2);
  return "$" + usd.toPrecision(2);
}
function fmtTokens(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "B";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(n);
}
function pad2(n) { return String(n).padStart(2, "0"); }
function fmtDuration(ms) {
  if (!isFinite(ms) || ms < 0) return "\\u2013";
  var s = Math.round(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + pad2(s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + pad2(Math.floor((s % 3600) / 60)) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}
function fields(st) {
  var settled = st.items.succeeded + st.items.failed;
  var end = st.finishedAt ? Date.parse(st.finishedAt) : Date.now();
  return {
    "items.succeeded": fmtInt(st.items.succeeded),
    "items.failed": fmtInt(st.items.failed),
    "items.pending": fmtInt(st.items.pending),
    "items.total": fmtInt(st.items.total),
    pct: (st.items.total ? Math.floor((settled / st.items.total) * 100) : 100) + "%",
    "shards.done": fmtInt(st.shards.done),
    "shards.total": fmtInt(st.shards.total),
    "shards.running": fmtInt(st.shards.running),
    "shards.pending": fmtInt(Math.max(0, st.shards.total - st.shards.done - st.shards.running)),
    "usage.usd": fmtUsd(st.usage.usd),
    "usage.tokens": fmtTokens(st.usage.tokens),
    executions: fmtInt(st.executions),
    redone: fmtInt(Math.max(0, st.executions - settled)),
    duration: fmtDuration(end - Date.parse(st.createdAt)),
    launches: fmtInt(st.launches.length) + (st.launches.length === 1 ? " launch" : " launches")
  };
}
var LABELS = { done: "done", partial: "done with failures", redone: "failures re-run", running: "running", pending: "pending" };
var redone = new Set(boot.redone);
function cellState(s) {
  if (s.state !== "done") return s.state;
  return s.failed === 0 ? "done" : redone.has(s.id) ? "redone" : "partial";
}
function cellTitle(s) {
  return s.id + " \\u00b7 " + LABELS[cellState(s)] + " \\u00b7 " + s.done + " ok" + (s.failed ? ", " + s.failed + " failed" : "") +
    " of " + s.items + (s.owner ? " \\u00b7 " + s.owner : "");
}
function setBadge(el, state) {
  el.className = "badge badge-" + (/^[a-z_]+$/.test(state) ? state : "other");
  el.textContent = state;
}
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function roundGrid(round) {
  var g = document.querySelector('.round[data-round="' + round + '"] .grid');
  if (g) return g;
  var first = document.querySelector("#rounds .grid");
  var wrap = el("div", "round");
  wrap.setAttribute("data-round", String(round));
  var h = el("h3", "", "Round " + round + " \\u00b7 failed items re-planned \\u00b7 ");
  var count = el("span", "", "0");
  count.setAttribute("data-count", "");
  h.appendChild(count);
  g = el("div", first ? first.className : "grid");
  wrap.appendChild(h);
  wrap.appendChild(g);
  var rounds = document.getElementById("rounds");
  var none = rounds.querySelector("p");
  if (none) none.remove();
  rounds.appendChild(wrap);
  return g;
}
// Looked up once: a selector query per shard per poll is quadratic on a big run.
var cells = new Map();
document.querySelectorAll("#rounds .cell[data-shard]").forEach(function (c) { cells.set(c.getAttribute("data-shard"), c); });
function updateGrid(list) {
  list.forEach(function (s) {
    var c = cells.get(s.id);
    if (!c) {
      c = el("div", "cell");
      c.setAttribute("data-shard", s.id);
      roundGrid(s.round).appendChild(c);
      cells.set(s.id, c);
    }
    var state = cellState(s);
    if (c.getAttribute("data-state") !== state) c.setAttribute("data-state", state);
    c.style.setProperty("--p", state === "running" && s.items ? Math.round(((s.done + s.failed) / s.items) * 100) + "%" : "");
    var title = cellTitle(s);
    if (c.title !== title) c.title = title;
  });
  document.querySelectorAll("#rounds .round").forEach(function (r) {
    var n = r.querySelectorAll(".cell").length;
    var span = r.querySelector("[data-count]");
    if (span) span.textContent = String(n);
  });
}
function updateLaunches(list) {
  var key = JSON.stringify(list);
  if (key === lastLaunches) return;
  lastLaunches = key;
  var body = document.getElementById("launches-body");
  if (!body || !list.length) return;
  body.replaceChildren.apply(body, list.map(function (l) {
    var tr = el("tr");
    tr.setAttribute("data-launch", String(l.n));
    tr.appendChild(el("td", "", String(l.n)));
    var ex = el("td", "mono");
    if (!l.execution) ex.appendChild(el("span", "muted", "starting\\u2026"));
    else if (l.url && /^https?:\\/\\//i.test(l.url)) {
      var a = el("a", "", l.execution);
      a.href = l.url; a.target = "_blank"; a.rel = "noopener noreferrer";
      ex.appendChild(a);
    } else ex.textContent = l.execution;
    tr.appendChild(ex);
    var tasks = el("td", "", String(l.taskCount));
    if (l.tasks) tasks.appendChild(el("span", "muted", " \\u00b7 " + l.tasks.running + " running, " + l.tasks.succeeded + " ok" + (l.tasks.failed ? ", " + l.tasks.failed + " failed" : "")));
    tr.appendChild(tasks);
    var td = el("td");
    var b = el("span");
    setBadge(b, l.state);
    td.appendChild(b);
    tr.appendChild(td);
    return tr;
  }));
}
// Same formula as chartPoints() in html.ts.
function drawChart() {
  var pts = points.map(function (p) { return { t: Date.parse(p.t), s: p.succeeded, f: p.failed }; }).filter(function (p) { return isFinite(p.t); });
  if (!pts.length) return;
  var ts = pts.map(function (p) { return p.t; });
  var t0 = Math.min.apply(null, ts);
  var span = Math.max(1, Math.max.apply(null, ts) - t0);
  var ymax = Math.max.apply(null, [1, boot.total].concat(pts.map(function (p) { return p.s + p.f; })));
  function x(t) { return (((t - t0) / span) * W).toFixed(1); }
  function y(v) { return (H - (v / ymax) * H).toFixed(1); }
  var ok = pts.map(function (p) { return x(p.t) + "," + y(p.s); }).join(" ");
  var failed = pts.map(function (p) { return x(p.t) + "," + y(p.f); }).join(" ");
  document.getElementById("chart-ok").setAttribute("points", ok);
  document.getElementById("chart-failed").setAttribute("points", failed);
  document.getElementById("chart-area").setAttribute("points", x(pts[0].t) + "," + H + " " + ok + " " + x(pts[pts.length - 1].t) + "," + H);
  document.getElementById("chart-ymax").textContent = fmtInt(ymax);
  document.getElementById("chart-ymid").textContent = fmtInt(Math.round(ymax / 2));
  var x1 = document.querySelector("#chart-x1 time");
  if (x1) {
    x1.setAttribute("datetime", points[points.length - 1].t);
    localizeTimes(document.getElementById("chart-x1"));
  }
}
function apply(st) {
  var f = fields(st);
  document.querySelectorAll("[data-f]").forEach(function (e) {
    var v = f[e.getAttribute("data-f")];
    if (v !== undefined && e.textContent !== v) e.textContent = v;
  });
  var badge = document.getElementById("run-state");
  if (badge) setBadge(badge, st.state);
  var total = st.items.total || 1;
  document.querySelectorAll("[data-bar]").forEach(function (b) {
    b.querySelector(".bar-ok").style.width = Math.min(100, (st.items.succeeded / total) * 100).toFixed(2) + "%";
    b.querySelector(".bar-failed").style.width = Math.min(100, (st.items.failed / total) * 100).toFixed(2) + "%";
    b.setAttribute("aria-label", st.items.succeeded + " of " + st.items.total + " succeeded, " + st.items.failed + " failed");
  });
  updateGrid(st.shardList);
  updateLaunches(st.launches);
  points.push({ t: new Date().toISOString(), succeeded: st.items.succeeded, failed: st.items.failed });
  // Keep the chart cheap on a page left open for hours: thin the older points out.
  if (points.length > 720) points = points.filter(function (_, i, all) { return i % 2 === 0 || i === all.length - 1; });
  drawChart();
  document.title = document.title.replace(/^\\(\\d+%\\) /, "").replace(/^/, isLive(st.state) ? "(" + f.pct + ") " : "");
}
function isLive(state) { return state === "running" || state === "pending"; }
function poll() {
  fetch(boot.api, { headers: headers(), cache: "no-store" })
    .then(function (res) {
      if (!res.ok) return res.text().then(function (t) { throw new Error("HTTP " + res.status + " " + t.slice(0, 160)); });
      return res.json();
    })
    .then(function (st) {
      apply(st);
      if (isLive(st.state)) {
        setConn("live \\u00b7 updated " + new Date().toLocaleTimeString());
        setTimeout(poll, 1000);
      } else if (wasLive) {
        // Finished: render once more from the server for the final buttons and failed items;
        // the live ones (Cancel) are stale from now on.
        wasLive = false;
        document.querySelectorAll("button[data-action]").forEach(function (b) { b.remove(); });
        setConn("run finished \\u00b7 refreshing");
        setTimeout(function () { location.reload(); }, 400);
      }
    })
    .catch(function (e) {
      setConn("cannot reach the API (" + e.message + ") \\u00b7 retrying", true);
      setTimeout(poll, 3000);
    });
}
function errorText(res) {
  return res.text().then(function (t) {
    try {
      var j = JSON.parse(t);
      var m = j && (j.message || (j.error && (j.error.message || j.error)));
      if (typeof m === "string") return m;
    } catch (e) {}
    return t.slice(0, 300) || "HTTP " + res.status;
  });
}
document.addEventListener("click", function (ev) {
  var btn = ev.target.closest && ev.target.closest("button[data-action]");
  if (!btn) return;
  var action = btn.getAttribute("data-action");
  // Each button starts or stops paid work: one stray click must not.
  var question = action === "cancel" ? "Cancel run " + boot.runId + "? Its tasks stop; finished items stay done."
    : action === "rerun-failed" ? "Rerun the failed items of run " + boot.runId + "? They are re-planned into new shards and run again."
    : "Rerun run " + boot.runId + "? Its unfinished shards are launched again; finished items are not redone.";
  if (!confirm(question)) return;
  var msg = document.getElementById("action-msg");
  var buttons = document.querySelectorAll("button[data-action]");
  buttons.forEach(function (b) { b.disabled = true; });
  msg.style.color = "var(--muted)";
  msg.textContent = action === "cancel" ? "Cancelling\\u2026" : "Starting the rerun\\u2026";
  fetch(boot.api + (action === "cancel" ? ":cancel" : ":rerun"), {
    method: "POST",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(action === "rerun-failed" ? { failedItems: true } : {})
  })
    .then(function (res) {
      if (res.ok) return location.reload();
      return errorText(res).then(function (m) { throw new Error(m); });
    })
    .catch(function (e) {
      msg.style.color = "";
      msg.textContent = (action === "cancel" ? "Cancel" : "Rerun") + " failed: " + e.message;
      buttons.forEach(function (b) { b.disabled = false; });
    });
});
drawChart();
if (boot.live) {
  setConn("live \\u00b7 polling every second");
  setTimeout(poll, 1000);
}
})();`;
