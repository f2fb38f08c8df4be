/**
 * What every page's inline script starts with: the token, times in the reader's zone, the
 * connection line, and reading an API error. Plain JavaScript in a string (see client.ts).
 */
export const COMMON = `
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
// A page opened with ?token= passes it on, so that pages behind the token keep working: links
// get it in their URL, and GET forms (the runs filters) a hidden field.
function carryToken(root) {
  if (!urlToken) return;
  root.querySelectorAll("a[data-internal]").forEach(function (a) {
    var u = new URL(a.getAttribute("href"), location.href);
    u.searchParams.set("token", urlToken);
    a.setAttribute("href", u.pathname + u.search + u.hash);
  });
  root.querySelectorAll("form[data-internal]").forEach(function (f) {
    if (f.querySelector('input[name="token"]')) return;
    var i = document.createElement("input");
    i.type = "hidden";
    i.name = "token";
    i.value = urlToken;
    f.appendChild(i);
  });
}
function setConn(text, bad) {
  var el = document.getElementById("conn");
  if (!el) return;
  el.textContent = text;
  el.className = bad ? "conn bad" : "conn";
}
// An API error: {error: {code, message, field}}, or whatever text came.
function apiError(res) {
  return res.text().then(function (t) {
    var e = new Error(t.slice(0, 300) || "HTTP " + res.status);
    e.status = res.status;
    try {
      var j = JSON.parse(t);
      var m = j && (j.message || (j.error && (j.error.message || j.error)));
      if (typeof m === "string") e.message = m;
      if (j && j.error && typeof j.error.code === "string") e.code = j.error.code;
    } catch (x) {}
    return e;
  });
}
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function withToken(href) {
  if (!urlToken) return href;
  var u = new URL(href, location.href);
  u.searchParams.set("token", urlToken);
  return u.pathname + u.search + u.hash;
}
// Kept at once, not at the first request: the sign-in page tries a kept token on a plain address.
token();
localizeTimes(document);
carryToken(document);
`;
