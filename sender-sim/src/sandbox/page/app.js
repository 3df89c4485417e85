// The sandbox page: reads and writes the JSON API, and refreshes the status queue and the
// attempts table every second while open. Text is always set with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const MASK = "********";
let secretSet = false;

async function api(method, path, body) {
  const init = { method, headers: {}, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    const message = payload && payload.error ? payload.error : `HTTP ${response.status}`;
    throw new Error(message);
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
  // "2026-11-22T02:03:04.123456Z" → "02:03:04 UTC" (the date too when it is not today).
  const date = rfc3339.slice(0, 10);
  const time = rfc3339.slice(11, 19);
  const today = new Date().toISOString().slice(0, 10);
  return date === today ? `${time} UTC` : `${date} ${time} UTC`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// ---- Webhook config ------------------------------------------------------------------------

async function loadCatalogue() {
  const events = await api("GET", "/api/events");
  const list = $("config-events-list");
  const select = $("trigger-event");
  for (const entry of events) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "enabled_events";
    box.value = entry.event;
    box.dataset.test = `event-${entry.event}`;
    label.appendChild(box);
    const name = document.createElement("span");
    name.textContent = entry.label;
    label.appendChild(name);
    if (entry.deprecated) {
      const mark = document.createElement("span");
      mark.className = "deprecated";
      mark.textContent = " (deprecated)";
      name.appendChild(mark);
    }
    const code = document.createElement("code");
    code.textContent = entry.event;
    label.appendChild(code);
    list.appendChild(label);

    const option = document.createElement("option");
    option.value = entry.event;
    option.textContent = entry.deprecated ? `${entry.label} (deprecated)` : entry.label;
    select.appendChild(option);
  }
}

function showConfig(config) {
  $("config-enabled").checked = config.enabled;
  $("config-endpoint").value = config.endpoint;
  $("config-batching").checked = config.batching;
  secretSet = config.secret !== "";
  const secret = $("config-secret");
  secret.value = "";
  secret.placeholder = secretSet ? "•••••••• (set; type to replace)" : "not set";
  $("config-secret-state").textContent = secretSet ? "A secret is set." : "No secret set yet.";
  $("config-secret-state").dataset.set = String(secretSet);
  const enabled = new Set(config.enabled_events);
  const list = $("config-events-list");
  for (const box of list.querySelectorAll("input[type=checkbox]")) {
    box.checked = enabled.has(box.value);
    enabled.delete(box.value);
  }
  // Event strings enabled through the API that the catalogue does not know.
  for (const event of enabled) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = event;
    box.checked = true;
    box.dataset.test = `event-${event}`;
    label.appendChild(box);
    const code = document.createElement("code");
    code.textContent = event;
    label.appendChild(code);
    list.appendChild(label);
  }
  $("config-form").dataset.loaded = "true";
}

async function saveConfig(event) {
  event.preventDefault();
  const message = $("config-message");
  const update = {
    enabled: $("config-enabled").checked,
    endpoint: $("config-endpoint").value.trim(),
    batching: $("config-batching").checked,
    enabled_events: Array.from(
      $("config-events-list").querySelectorAll("input[type=checkbox]:checked"),
      (box) => box.value),
  };
  const secret = $("config-secret").value;
  if (secret !== "") update.secret = secret;
  $("config-save").disabled = true;
  try {
    showConfig(await api("PUT", "/api/config", update));
    say(message, "Saved.", "ok");
    await refreshStatus();
  } catch (error) {
    say(message, `Not saved: ${error.message}`, "error");
  } finally {
    $("config-save").disabled = false;
  }
}

// ---- Status queue --------------------------------------------------------------------------

// The endpoint's answer in short ("HTTP 503", "connection refused"), the whole error on demand.
function answerCell(row, status, error, outcome) {
  const td = cell(row, "", "answer");
  const short = document.createElement("span");
  short.className = "short";
  const head = error ? error.split(": ")[0] : outcome;
  short.textContent = status !== null ? `HTTP ${status}` : head;
  td.appendChild(short);
  if (error && error !== head) {
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "details";
    details.appendChild(summary);
    const full = document.createElement("span");
    full.textContent = error;
    details.appendChild(full);
    td.appendChild(details);
  }
}

function showStatus(status) {
  const queue = $("status-queue");
  queue.dataset.state = status.state;
  queue.dataset.waiting = String(status.waiting);
  if (status.state === "Empty") {
    queue.textContent = "Empty";
  } else if (status.state === "Waiting") {
    queue.textContent = `waiting to send ${status.waiting} callback${status.waiting === 1 ? "" : "s"}`;
  } else {
    const why = status.enabled ? "" : ", webhooks disabled";
    queue.textContent = `Stalled (${status.waiting} waiting${why})`;
  }

  const last = $("status-last-processed");
  last.textContent = status.last_processed_ago_seconds === null
    ? "never"
    : `${duration(status.last_processed_ago_seconds)} ago`;
  last.dataset.lastProcessed = status.last_processed || "";

  const stalled = $("status-stalled-for");
  stalled.dataset.stalledSince = status.stalled_since || "";
  stalled.textContent = status.stalled_for_seconds === null
    ? "—"
    : `${duration(status.stalled_for_seconds)} (since ${clock(status.stalled_since)})`;

  // PassFort's two pages disagree on Refresh; the sandbox says which reading it follows.
  $("status-refresh-hint").textContent = status.refresh === "retries-now"
    ? "Refresh sends the queue's head now, ignoring any back-off (PassFort's stalled-queue page), and keeps Recent failures."
    : "Refresh clears Recent failures (PassFort's \"About\" page).";

  const failed = $("status-failed-attempts");
  failed.textContent = String(status.failed_attempts);
  failed.dataset.failedAttempts = String(status.failed_attempts);

  const retry = $("status-next-retry");
  retry.dataset.nextRetry = status.next_retry || "";
  if (status.next_retry === null) {
    retry.textContent = "—";
  } else if (!status.enabled) {
    retry.textContent = "when webhooks are enabled";
  } else {
    const wait = status.next_retry_in_seconds;
    retry.textContent = `${clock(status.next_retry)} (${wait <= 0 ? "now" : "in " + duration(wait)})`;
  }

  const body = $("status-recent-failures");
  body.replaceChildren();
  for (const failure of status.recent_failures) {
    const row = document.createElement("tr");
    row.dataset.test = "recent-failure";
    row.dataset.outcome = failure.outcome;
    cell(row, clock(failure.failed_at));
    const event = cell(row, "", "event");
    // Let long event names break after an underscore rather than mid-word.
    failure.event.split("_").forEach((part, i, parts) => {
      event.append(part + (i < parts.length - 1 ? "_" : ""));
      if (i < parts.length - 1) event.appendChild(document.createElement("wbr"));
    });
    cell(row, failure.webhook_id, "ids");
    answerCell(row, failure.status, failure.error, failure.outcome);
    body.appendChild(row);
  }
  body.dataset.count = String(status.recent_failures.length);
  $("status-no-failures").hidden = status.recent_failures.length > 0;

  $("status-updated").textContent = `Updated ${clock(status.as_of)}.`;
  const stateError = $("status-state-error");
  stateError.hidden = !status.state_error;
  stateError.textContent = status.state_error ? `State file: ${status.state_error}` : "";
  $("time-scale").textContent = status.time_scale === 1
    ? ""
    : `· back-off ${status.time_scale}× faster`;
}

function showAttempts(attempts) {
  const body = $("attempts-body");
  body.replaceChildren();
  for (const attempt of attempts.slice(0, 50)) {
    const row = document.createElement("tr");
    row.dataset.test = "attempt";
    row.dataset.outcome = attempt.outcome;
    row.dataset.at = attempt.at;
    cell(row, String(attempt.seq));
    cell(row, clock(attempt.at));
    const ids = attempt.webhook_ids.length > 3
      ? `${attempt.webhook_ids.slice(0, 3).join(" ")} … (${attempt.webhook_ids.length} in batch)`
      : attempt.webhook_ids.join(" ");
    cell(row, ids, "ids");
    cell(row, String(attempt.try_number));
    let outcome = attempt.outcome;
    if (attempt.status !== null && attempt.outcome !== "delivered") outcome += ` (HTTP ${attempt.status})`;
    if (attempt.outcome === "delivered") outcome = "delivered (200)";
    const td = cell(row, outcome, "outcome");
    if (attempt.error) td.title = attempt.error;
    cell(row, `${attempt.latency_ms.toFixed(1)} ms`);
    body.appendChild(row);
  }
  body.dataset.count = String(attempts.length);
  $("attempts-none").hidden = attempts.length > 0;
}

async function refreshStatus() {
  const [status, attempts] = await Promise.all([
    api("GET", "/api/status"),
    api("GET", "/api/attempts"),
  ]);
  showStatus(status);
  showAttempts(attempts);
}

async function press(path, button, done) {
  const message = $("status-message");
  button.disabled = true;
  try {
    showStatus(await api("POST", path));
    showAttempts(await api("GET", "/api/attempts"));
    say(message, done, "ok");
  } catch (error) {
    say(message, error.message, "error");
  } finally {
    button.disabled = false;
  }
}

// ---- Trigger -------------------------------------------------------------------------------

async function trigger(event) {
  event.preventDefault();
  const message = $("trigger-message");
  const request = {
    event: $("trigger-event").value,
    count: Number($("trigger-count").value),
  };
  const raw = $("trigger-data").value.trim();
  if (raw !== "") {
    try {
      request.data = JSON.parse(raw);
    } catch (error) {
      say(message, `Custom data is not valid JSON: ${error.message}`, "error");
      return;
    }
  }
  $("trigger-submit").disabled = true;
  try {
    const result = await api("POST", "/api/events", request);
    let text = `Queued ${result.queued} webhook${result.queued === 1 ? "" : "s"}.`;
    if (result.not_queued > 0) text += ` ${result.not_queued} not queued: ${result.reason}`;
    say(message, text, result.queued > 0 ? "ok" : "error");
    await refreshStatus();
  } catch (error) {
    say(message, `Nothing queued: ${error.message}`, "error");
  } finally {
    $("trigger-submit").disabled = false;
  }
}

// ---- Start ---------------------------------------------------------------------------------

async function start() {
  $("config-form").addEventListener("submit", saveConfig);
  $("trigger-form").addEventListener("submit", trigger);
  $("status-refresh").addEventListener("click",
    (e) => press("/api/refresh", e.currentTarget, "Recent failures cleared."));
  $("status-retry").addEventListener("click",
    (e) => press("/api/retry", e.currentTarget, "Retrying now."));
  await loadCatalogue();
  showConfig(await api("GET", "/api/config"));
  await refreshStatus();
  document.body.dataset.ready = "true";
  setInterval(() => refreshStatus().catch(() => {
    $("status-updated").textContent = "The sandbox is not answering.";
  }), 1000);
}

start().catch((error) => {
  document.body.dataset.ready = "error";
  say($("config-message"), `Could not load: ${error.message}`, "error");
});
