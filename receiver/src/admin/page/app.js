// The receiver's admin page: reads /status and the JSON API every two seconds and draws the
// last hour in SVG. Actions send the admin token in an Authorization header (kept in this tab's
// sessionStorage, never a cookie). Text is always set with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "passfort-admin-token";
const REFRESH_MS = 2000;

let access = { actions: "disabled", available: {} };
let serverNow = Date.now();

// ---- small helpers ---------------------------------------------------------------------------

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    throw new Error(payload && payload.error ? payload.error : `HTTP ${response.status}`);
  }
  return payload;
}

function say(element, text, kind) {
  element.textContent = text;
  element.className = "message" + (kind ? " " + kind : "");
  element.dataset.result = kind === "error" ? "error" : (kind ? "ok" : "");
}

function duration(seconds) {
  if (seconds < 1) return "less than a second";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 36 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

function clock(rfc3339) {
  // "2026-11-22T02:03:04.123Z" → "02:03:04 UTC" (with the date when it is not today).
  const date = rfc3339.slice(0, 10);
  const time = rfc3339.slice(11, 19);
  const today = new Date(serverNow).toISOString().slice(0, 10);
  return date === today ? `${time} UTC` : `${date} ${time} UTC`;
}

function ago(rfc3339) {
  const seconds = Math.max(0, (serverNow - Date.parse(rfc3339)) / 1000);
  return `${duration(seconds)} ago`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = -1;
  do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// ---- the token -------------------------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function showAccess() {
  const box = $("access");
  const hasToken = token() !== null;
  box.dataset.actions = access.actions;
  box.dataset.token = hasToken ? "accepted" : "";
  if (access.actions !== "token") {
    $("access-state").textContent = "Read-only: actions are off (no PASSFORT_ADMIN_TOKEN)";
  } else {
    $("access-state").textContent = hasToken ? "Actions unlocked in this tab" : "Read-only until you enter the admin token";
  }
  $("access-unlock").hidden = access.actions !== "token" || hasToken;
  $("access-lock").hidden = !hasToken;
  const off = access.actions !== "token";
  for (const button of document.querySelectorAll("button[data-action]")) {
    const available = access.available[button.dataset.action] === true;
    button.disabled = off || !available;
    button.title = off ? "Actions are off: the receiver runs without PASSFORT_ADMIN_TOKEN"
      : (available ? "" : "Not available in this receiver");
  }
}

let pendingAsk = null;

// Shows the token form and resolves with what was typed, or null when cancelled.
function askToken() {
  const form = $("token-form");
  form.hidden = false;
  $("token-input").value = "";
  $("token-input").focus();
  return new Promise((resolve) => { pendingAsk = resolve; });
}

function answerAsk(value) {
  $("token-form").hidden = true;
  $("token-input").value = "";
  if (pendingAsk) {
    const resolve = pendingAsk;
    pendingAsk = null;
    resolve(value);
  }
}

// POSTs an action with the token; says what happened in `message`. Returns the answer or null.
async function act(path, body, message, describe) {
  if (access.actions !== "token") {
    say(message, "Not done: actions are off because the receiver runs without PASSFORT_ADMIN_TOKEN.", "error");
    message.dataset.status = "403";
    return null;
  }
  let secret = token();
  if (secret === null) {
    secret = await askToken();
    if (!secret) {
      say(message, "Not done: this action needs the admin token.", "error");
      message.dataset.status = "";
      return null;
    }
    sessionStorage.setItem(TOKEN_KEY, secret);
    showAccess();
  }
  say(message, "Working…");
  message.dataset.status = "";
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      cache: "no-store",
      headers: { "Authorization": `Bearer ${secret}`, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
  } catch (e) {
    say(message, `Not done: the receiver did not answer (${e.message}).`, "error");
    return null;
  }
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  message.dataset.status = String(response.status);
  const error = payload && payload.error ? payload.error : `HTTP ${response.status}`;
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showAccess();
    say(message, `Refused: ${error}. Nothing changed.`, "error");
    return null;
  }
  if (!response.ok) {
    say(message, `Not done: ${error}. Nothing changed.`, "error");
    return null;
  }
  say(message, describe(payload), "ok");
  refresh();
  return payload;
}

// ---- the queue -------------------------------------------------------------------------------

function marker(element, value) {
  element.textContent = "";
  element.dataset.id = value ? value.id : "";
  if (!value) { element.textContent = "none yet"; return; }
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = value.id;
  const when = document.createElement("span");
  when.className = "ago";
  when.textContent = ` · ${ago(value.at)}`;
  when.title = clock(value.at);
  element.append(id, when);
}

function showStatus(status) {
  const state = $("queue-state");
  state.dataset.state = status.queue;
  state.dataset.waiting = String(status.queue_depth);
  if (status.queue === "empty") state.textContent = "Empty";
  else if (status.queue === "waiting") state.textContent = `waiting to hand on ${status.queue_depth}`;
  else state.textContent = `Stalled (${status.queue_depth} waiting)`;

  const since = status.stalled_since || null;
  $("queue-stalled-for").dataset.stalledSince = since || "";
  $("queue-stalled-for").textContent = status.queue === "stalled" && since
    ? `${duration(Math.max(0, (serverNow - Date.parse(since)) / 1000))} (since ${clock(since)})` : "—";
  const retry = status.next_retry_at;
  $("queue-next-retry").dataset.nextRetry = retry || "";
  if (retry) {
    const wait = (Date.parse(retry) - serverNow) / 1000;
    $("queue-next-retry").textContent = wait > 0 ? `${clock(retry)} (in ${duration(wait)})` : `${clock(retry)} (due now)`;
  } else {
    $("queue-next-retry").textContent = status.queue === "stalled" ? "retrying now" : "—";
  }
  marker($("queue-last-received"), status.last_received);
  marker($("queue-last-processed"), status.last_processed);
  const lag = status.processing_lag_seconds;
  const lagCell = $("queue-lag");
  lagCell.dataset.seconds = String(lag);
  lagCell.dataset.level = lag >= 300 ? "bad" : (lag >= 60 ? "warn" : "");
  lagCell.textContent = status.queue_depth === 0 ? "none: nothing waiting" : duration(lag);
  $("queue-done").textContent = String(status.done);
  $("queue-dead").dataset.count = String(status.dead_letters);
  $("queue-dead").textContent = String(status.dead_letters);

  const body = $("failures-body");
  body.textContent = "";
  for (const failure of status.recent_failures) {
    const row = document.createElement("tr");
    row.dataset.test = "failure";
    row.dataset.id = failure.id;
    cell(row, clock(failure.at));
    cell(row, failure.id, "id");
    cell(row, failure.event);
    cell(row, String(failure.attempt));
    cell(row, failure.error, "error");
    body.appendChild(row);
  }
  body.dataset.count = String(status.recent_failures.length);
  $("failures-none").hidden = status.recent_failures.length > 0;

  // Retention figures, when this receiver reports them.
  const retention = status.retention;
  $("retention-grid").hidden = !retention;
  $("retention-none").hidden = Boolean(retention);
  if (retention) {
    $("retention-bodies").textContent = retention.webhooks_stored === undefined
      ? String(retention.bodies_kept)
      : `${retention.bodies_kept} of ${retention.webhooks_stored} webhooks`;
    $("retention-oldest").textContent = retention.bodies_kept > 0
      ? `${duration(retention.oldest_kept_body_age_seconds)} old` : "none kept";
    $("retention-size").textContent = bytes(retention.database_bytes);
    $("retention-erased").textContent = retention.bodies_erased_total === undefined
      ? "—" : `${retention.bodies_erased_total} bodies, ${retention.ids_forgotten_total} ids forgotten`;
  }
}

// ---- dead letters ----------------------------------------------------------------------------

// Dead letters whose Drop was pressed once and awaits confirmation (kept across refreshes).
const confirmingDrop = new Set();
let shownDeadLetters = "";

function showDeadLetters(list) {
  // Redrawn only when it changed, so a button is never replaced under the pointer.
  const key = JSON.stringify(list) + [...confirmingDrop].join(",");
  if (key === shownDeadLetters) { showAccess(); return; }
  shownDeadLetters = key;
  const body = $("dead-body");
  body.textContent = "";
  for (const letter of list.dead_letters) {
    const row = document.createElement("tr");
    row.dataset.test = "dead-letter";
    row.dataset.id = letter.id;
    cell(row, String(letter.seq));
    cell(row, letter.id, "id");
    cell(row, letter.event);
    cell(row, String(letter.attempts));
    cell(row, letter.last_error || "", "error");
    cell(row, letter.failed_at ? clock(letter.failed_at) : "");
    const buttons = cell(row, "", "buttons");
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "small";
    retry.textContent = "Retry";
    retry.dataset.action = "retry";
    retry.dataset.test = "retry";
    retry.addEventListener("click", () => act("/api/dead-letters/retry", { id: letter.id }, $("dead-message"),
      () => `${letter.id} is back in the queue, next to be handed on.`));
    const drop = document.createElement("button");
    drop.type = "button";
    drop.className = "small danger";
    drop.textContent = "Drop";
    drop.dataset.action = "drop";
    drop.dataset.test = "drop";
    if (confirmingDrop.has(letter.id)) {
      drop.classList.add("confirm");
      drop.textContent = "Confirm drop";
    }
    drop.addEventListener("click", () => {
      if (!confirmingDrop.has(letter.id)) {
        confirmingDrop.add(letter.id);
        drop.classList.add("confirm");
        drop.textContent = "Confirm drop";
        say($("dead-message"), `Press Confirm drop to erase ${letter.id} for good: it will never be handed on.`);
        return;
      }
      confirmingDrop.delete(letter.id);
      act("/api/dead-letters/drop", { id: letter.id }, $("dead-message"),
        () => `${letter.id} was dropped: its body erased, never handed on.`);
    });
    buttons.append(retry, " ", drop);
    body.appendChild(row);
  }
  body.dataset.count = String(list.dead_letters.length);
  $("dead-none").hidden = list.total > 0;
  $("dead-retry-all").dataset.total = String(list.total);
  if (list.total > list.dead_letters.length) {
    $("dead-none").hidden = false;
    $("dead-none").textContent = `Showing the first ${list.dead_letters.length} of ${list.total}.`;
  } else {
    $("dead-none").textContent = "None.";
  }
  showAccess();
  if (list.total === 0) $("dead-retry-all").disabled = true;
}

// ---- charts ----------------------------------------------------------------------------------

const COLORS = {
  received: "#1f5fbf", stored: "#2a9d8f", duplicates: "#8e6bbf", processed: "#1e7b46", failed: "#b3261e",
  unauthorized: "#b3261e", bad_request: "#d9822b", too_large: "#8e6bbf", store_unavailable: "#5b6475",
  deadline: "#16243d", method_not_allowed: "#b8a04a", ip: "#2a9d8f",
  p50: "#1f5fbf", p99: "#d9822b",
};
const REASONS = {
  unauthorized: "401 secret", bad_request: "400 body", too_large: "413 too large",
  store_unavailable: "503 store", deadline: "503 deadline", method_not_allowed: "405 method", ip: "ip not allowed",
};

function svg(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

const W = 640, H = 150, LEFT = 44, RIGHT = 8, TOP = 8, BOTTOM = 20;

function frame(plot, hour, ticks, y) {
  plot.textContent = "";
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, plot);
  for (const tick of ticks) {
    const ty = y(tick.value);
    svg("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: ty, y2: ty }, root);
    svg("text", { x: LEFT - 5, y: ty + 3, "text-anchor": "end" }, root).textContent = tick.label;
  }
  svg("line", { class: "axis", x1: LEFT, x2: W - RIGHT, y1: H - BOTTOM, y2: H - BOTTOM }, root);
  const n = hour.received.length;
  const start = Date.parse(hour.first_minute);
  for (let i = 0; i < n; i += 15) {
    const label = new Date(start + i * 60000).toISOString().slice(11, 16);
    svg("text", { x: x(i, n), y: H - 5, "text-anchor": "middle" }, root).textContent = label;
  }
  svg("text", { x: W - RIGHT, y: H - 5, "text-anchor": "end" }, root).textContent = "now";
  return root;
}

function x(i, n) { return LEFT + (i + 0.5) * (W - LEFT - RIGHT) / n; }

function niceMax(max) {
  if (max <= 4) return 4;
  const magnitude = Math.pow(10, Math.floor(Math.log10(max)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= max) return step * magnitude;
  }
  return 10 * magnitude;
}

function linearTicks(max) {
  return [0, max / 2, max].map((value) => ({ value, label: String(Math.round(value * 10) / 10) }));
}

function legend(element, entries) {
  element.textContent = "";
  for (const entry of entries) {
    const key = document.createElement("span");
    key.className = "key";
    key.dataset.series = entry.name;
    const swatch = document.createElement("span");
    swatch.className = "swatch" + (entry.dashed ? " dashed" : "");
    if (entry.dashed) swatch.style.borderColor = entry.color; else swatch.style.background = entry.color;
    const label = document.createElement("span");
    label.textContent = entry.label + " ";
    const total = document.createElement("b");
    total.textContent = entry.total;
    key.append(swatch, label, total);
    element.appendChild(key);
  }
}

function polyline(root, values, n, y, color, name) {
  let d = "";
  let nonzero = 0;
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    if (value > 0) nonzero += 1;
    d += `${d === "" || values[i - 1] === null || values[i - 1] === undefined ? "M" : "L"}${x(i, n).toFixed(1)},${y(value).toFixed(1)}`;
  });
  const path = svg("path", { class: "series", d: d || "M0,0", stroke: color, "data-series": name, "data-nonzero": nonzero }, root);
  if (!d) path.setAttribute("visibility", "hidden");
  values.forEach((value, i) => {
    if (value) {
      const dot = svg("circle", { cx: x(i, n), cy: y(value), r: 2, fill: color }, root);
      svg("title", {}, dot).textContent = `${name}: ${value}`;
    }
  });
  return nonzero;
}

function drawWebhooks(hour) {
  const names = ["received", "stored", "duplicates", "processed", "failed"];
  const n = hour.received.length;
  const max = niceMax(Math.max(0, ...names.flatMap((name) => hour[name])));
  const y = (v) => TOP + (H - TOP - BOTTOM) * (1 - v / max);
  const root = frame($("chart-webhooks-plot"), hour, linearTicks(max), y);
  let points = 0;
  for (const name of names) points += polyline(root, hour[name], n, y, COLORS[name], name);
  $("chart-webhooks").dataset.points = String(points);
  legend($("chart-webhooks-legend"), names.map((name) => ({
    name, label: name, color: COLORS[name], total: String(hour[name].reduce((a, b) => a + b, 0)),
  })));
}

function drawRejected(hour) {
  const n = hour.received.length;
  const series = hour.rejected;
  const stacks = Array.from({ length: n }, (_, i) => series.reduce((sum, s) => sum + s.counts[i], 0));
  const max = niceMax(Math.max(0, ...stacks));
  const y = (v) => TOP + (H - TOP - BOTTOM) * (1 - v / max);
  const root = frame($("chart-rejected-plot"), hour, linearTicks(max), y);
  const width = Math.max(2, (W - LEFT - RIGHT) / n - 2);
  let points = 0;
  for (let i = 0; i < n; i += 1) {
    let base = 0;
    for (const s of series) {
      const count = s.counts[i];
      if (!count) continue;
      points += 1;
      const rect = svg("rect", {
        x: x(i, n) - width / 2, y: y(base + count), width, height: y(base) - y(base + count),
        fill: COLORS[s.reason] || "#5b6475", "data-series": s.reason,
      }, root);
      svg("title", {}, rect).textContent = `${REASONS[s.reason] || s.reason}: ${count}`;
      base += count;
    }
  }
  $("chart-rejected").dataset.points = String(points);
  legend($("chart-rejected-legend"), series.map((s) => ({
    name: s.reason, label: REASONS[s.reason] || s.reason, color: COLORS[s.reason] || "#5b6475",
    total: String(s.counts.reduce((a, b) => a + b, 0)),
  })));
}

function drawLatency(hour) {
  const n = hour.received.length;
  // Log scale from 1 ms to 20 s: milliseconds and PassFort's 5 s / 10 s limits on one chart.
  const lo = Math.log10(0.001), hi = Math.log10(20);
  const y = (v) => {
    const clamped = Math.min(Math.max(v, 0.001), 20);
    return TOP + (H - TOP - BOTTOM) * (1 - (Math.log10(clamped) - lo) / (hi - lo));
  };
  const ticks = [[0.001, "1 ms"], [0.01, "10 ms"], [0.1, "100 ms"], [1, "1 s"], [10, "10 s"]]
    .map(([value, label]) => ({ value, label }));
  const root = frame($("chart-latency-plot"), hour, ticks, y);
  for (const [limit, color] of [[5, "#d9822b"], [10, "#b3261e"]]) {
    const line = svg("line", { class: "limit", x1: LEFT, x2: W - RIGHT, y1: y(limit), y2: y(limit), stroke: color }, root);
    svg("title", {}, line).textContent = `PassFort's ${limit} s limit`;
  }
  const seconds = (values) => values.map((v) => (v === null ? null : v));
  let points = polyline(root, seconds(hour.latency_p50_seconds), n, y, COLORS.p50, "p50");
  points += polyline(root, seconds(hour.latency_p99_seconds), n, y, COLORS.p99, "p99");
  $("chart-latency").dataset.points = String(points);
  const worst = (values) => {
    const present = values.filter((v) => v !== null);
    return present.length ? `max ${formatSeconds(Math.max(...present))}` : "no requests";
  };
  legend($("chart-latency-legend"), [
    { name: "p50", label: "p50", color: COLORS.p50, total: worst(hour.latency_p50_seconds) },
    { name: "p99", label: "p99", color: COLORS.p99, total: worst(hour.latency_p99_seconds) },
    { name: "batch-limit", label: "batch limit", color: "#d9822b", dashed: true, total: "5 s" },
    { name: "single-limit", label: "single limit", color: "#b3261e", dashed: true, total: "10 s" },
  ]);
}

function formatSeconds(s) {
  const ms = s * 1000;
  if (ms < 10) return `≤ ${ms.toFixed(1)} ms`;
  if (ms < 1000) return `≤ ${Math.round(ms)} ms`;
  return `≤ ${s.toFixed(1)} s`;
}

// ---- replay ----------------------------------------------------------------------------------

function showReplay() {
  if (access.available.replay !== true) {
    $("replay-hint").textContent = "Replay is not available on this receiver (it has no sink to replay to).";
  }
}

// A webhook id, or an RFC 3339 time: the field says which bound it is.
function bound(text, time, id) {
  const value = text.trim();
  if (value === "") return {};
  return /^\d{4}-\d{2}-\d{2}T/.test(value) ? { [time]: value } : { [id]: value };
}

function replayRequest(dryRun) {
  const events = $("replay-events").value.split(",").map((e) => e.trim()).filter((e) => e !== "");
  return {
    ...bound($("replay-from").value, "since", "from_id"),
    ...bound($("replay-to").value, "until", "to_id"),
    events,
    dry_run: dryRun,
  };
}

function describeReplay(answer) {
  const verb = answer.dry_run ? "Would replay" : "Replayed";
  let text = `${verb} ${answer.replayed} webhook(s).`;
  if (answer.skipped.length) text += ` Skipped ${answer.skipped.length} whose body was erased.`;
  if (answer.failed) text += ` The sink failed at ${answer.failed.id} (${answer.failed.error}): nothing after it was replayed; replay again from that id.`;
  return text;
}

// ---- refresh ---------------------------------------------------------------------------------

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [status, hour, dead] = await Promise.all([
      getJson("/status"), getJson("/api/trends"), getJson("/api/dead-letters"),
    ]);
    if (status.as_of) serverNow = Date.parse(status.as_of);
    showStatus(status);
    drawWebhooks(hour);
    drawRejected(hour);
    drawLatency(hour);
    showDeadLetters(dead);
    $("updated").textContent = `· updated ${clock(status.as_of || new Date().toISOString())}`;
    $("load-error").hidden = true;
    document.body.dataset.ready = "true";
  } catch (e) {
    $("load-error").textContent = `Cannot read the receiver's status: ${e.message}`;
    $("load-error").hidden = false;
  } finally {
    refreshing = false;
  }
}

async function start() {
  try {
    access = await getJson("/api/access");
  } catch (_) {
    access = { actions: "disabled", available: {} };
  }
  showAccess();
  showReplay();
  $("access-unlock").addEventListener("click", async () => {
    const value = await askToken();
    if (value) { sessionStorage.setItem(TOKEN_KEY, value); }
    showAccess();
  });
  $("access-lock").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showAccess(); });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    answerAsk($("token-input").value.trim() || null);
  });
  $("token-cancel").addEventListener("click", () => answerAsk(null));
  $("replay-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("/api/replay", replayRequest(false), $("replay-message"), describeReplay);
  });
  $("replay-preview").addEventListener("click", () =>
    act("/api/replay", replayRequest(true), $("replay-message"), describeReplay));
  $("dead-retry-all").dataset.action = "retry_all";
  $("dead-retry-all").addEventListener("click", () => act("/api/dead-letters/retry-all", {}, $("dead-message"),
    (answer) => `${answer.retried} dead letter(s) back in the queue.`));
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

start();
