/**
 * The run page's inline script (plain JavaScript in a string, see client.ts): while the run is
 * live it polls `GET {api}` every second and updates the shard grid, counters and chart in
 * place; the buttons POST to `{api}:rerun` and `{api}:cancel` with the body the controls beside
 * them make, after asking.
 */
import { COMMON } from "./client-common.js";

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
// ---- the controls that finish a run: Rerun (with a budget), Rerun failed items (by reason), upgrade ----
// The reasons checked that have failed items (the others are shown, greyed, for what the default is).
function checkedReasons() {
  return Array.prototype.map.call(document.querySelectorAll('input[name="reason"]:checked'), function (i) { return i.value; })
    .filter(function (r) { return boot.failedByReason[r] > 0; });
}
function sameSet(a, b) {
  return a.length === b.length && a.every(function (x) { return b.indexOf(x) >= 0; });
}
function chosenCount(reasons) {
  return reasons.reduce(function (n, r) { return n + (boot.failedByReason[r] || 0); }, 0);
}
function updateChosen() {
  var out = document.getElementById("retry-count");
  if (!out) return;
  var n = chosenCount(checkedReasons());
  out.textContent = fmtInt(n) + " of " + fmtInt(boot.failedTotal) + " failed " + (boot.failedTotal === 1 ? "item" : "items");
}
document.addEventListener("change", function (ev) {
  if (ev.target && ev.target.name === "reason") updateChosen();
});
// A message about a value is stale once the value changes.
document.addEventListener("input", function (ev) {
  var msg = document.getElementById("action-msg");
  if (msg && ev.target && ev.target.closest && ev.target.closest("form[data-form]")) msg.textContent = "";
});
function upgradeChosen() {
  var box = document.querySelector('input[name="upgrade"]');
  return !!box && box.checked && !box.closest("[hidden]");
}
function budgetField(name, label) {
  var input = document.querySelector('input[name="' + name + '"]');
  if (!input) return undefined;
  if (!input.validity.valid) throw new Error(label + ": " + (input.validationMessage || "not a valid number"));
  var v = input.value.trim();
  return v === "" ? undefined : Number(v);
}
// The request body, as the CLI's flags would make it; throws a message for a choice that cannot be sent.
function bodyFor(action) {
  var body = {};
  if (action === "rerun-failed") {
    body.failedItems = true;
    var reasons = checkedReasons();
    if (!reasons.length) throw new Error("choose at least one reason to retry");
    // The API's default is every reason but non_retriable: sent only when the choice differs from it.
    var byDefault = boot.defaultReasons.filter(function (r) { return boot.failedByReason[r] > 0; });
    if (!sameSet(reasons, byDefault)) body.reasons = reasons;
  } else if (action === "rerun") {
    var tokens = budgetField("budgetTokens", "budget tokens");
    var usd = budgetField("budgetUsd", "budget dollars");
    if (tokens !== undefined) body.budgetTokens = tokens;
    if (usd !== undefined) body.budgetUsd = usd;
  }
  if (action !== "cancel" && upgradeChosen()) body.upgrade = true;
  return body;
}
function question(action, body) {
  if (action === "cancel") return "Cancel run " + boot.runId + "? Its tasks stop; finished items stay done.";
  var code = body.upgrade ? " They run the job's current code (upgrade)." : "";
  if (action === "rerun-failed") {
    var reasons = checkedReasons();
    var n = chosenCount(reasons);
    return "Rerun the failed items of run " + boot.runId + "? " + fmtInt(n) + (n === 1 ? " item" : " items") + " (" + reasons.join(", ") +
      ") are re-planned into new shards and run again." + code;
  }
  var budget = [body.budgetTokens !== undefined ? fmtInt(body.budgetTokens) + " tokens" : "", body.budgetUsd !== undefined ? "$" + body.budgetUsd : ""].filter(Boolean).join(" and ");
  return "Rerun run " + boot.runId + "? Its unfinished shards are launched again; finished items are not redone." + (budget ? " Run budget: " + budget + "." : "") + code;
}
// Enter in a field of a rerun form means its button, not a navigation.
document.addEventListener("submit", function (ev) {
  var form = ev.target;
  if (!form.hasAttribute || !form.hasAttribute("data-form")) return;
  ev.preventDefault();
  var b = form.querySelector("button[data-action]");
  if (b) b.click();
});
document.addEventListener("click", function (ev) {
  var btn = ev.target.closest && ev.target.closest("button[data-action]");
  if (!btn) return;
  var action = btn.getAttribute("data-action");
  var msg = document.getElementById("action-msg");
  var body;
  try {
    body = bodyFor(action);
  } catch (e) {
    msg.style.color = "";
    msg.textContent = e.message;
    return;
  }
  // Each button starts or stops paid work: one stray click must not.
  if (!confirm(question(action, body))) return;
  var buttons = document.querySelectorAll("button[data-action]");
  buttons.forEach(function (b) { b.disabled = true; });
  msg.style.color = "var(--muted)";
  msg.textContent = action === "cancel" ? "Cancelling\\u2026" : "Starting the rerun\\u2026";
  fetch(boot.api + (action === "cancel" ? ":cancel" : ":rerun"), {
    method: "POST",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(body)
  })
    .then(function (res) {
      if (res.ok) return location.reload();
      return apiError(res).then(function (e) { throw e; });
    })
    .catch(function (e) {
      msg.style.color = "";
      msg.textContent = (action === "cancel" ? "Cancel" : "Rerun") + " failed: " + e.message;
      // The server found changed code the page did not know of: offer the upgrade now.
      if (e.code === "version_changed") {
        var up = document.getElementById("upgrade");
        if (up) up.hidden = false;
      }
      buttons.forEach(function (b) { b.disabled = false; });
    });
});
updateChosen();
drawChart();
if (boot.live) {
  setConn("live \\u00b7 polling every second");
  setTimeout(poll, 1000);
}
})();`;
