// SMS Failover settings page: the switch without a reload, and live status by polling: the endpoints, the edge
// ledger, the shared breaker, the unknown outcomes and the failover events.
// Without this script the page still works: the switch is a form button and the status is server-rendered.
"use strict";

(function () {
  const POLL_MS = 2500;
  const STALE_S = 10;
  const form = document.getElementById("toggle-form");
  const button = document.getElementById("failover-switch");
  const pill = document.getElementById("switch-pill");
  const errorBox = document.getElementById("toggle-error");
  const live = document.getElementById("live");
  const freshness = document.getElementById("freshness");
  const announcer = document.getElementById("announcer");
  const chart = document.getElementById("chart");
  const events = document.getElementById("failover-events");
  const unknowns = document.getElementById("unknowns");
  const breaker = document.getElementById("breaker"); // only when a shared breaker is configured
  const csrf = form.querySelector("input[name=csrf_token]").value;
  let lastUpdate = Date.now();
  let lastStates = {};
  let lastChart = null;
  let lastEvents = null;
  let lastUnknowns = null;
  let lastBreakerState = breaker ? breaker.querySelector("[data-field='breaker_state']").dataset.state : null;
  let writes = 0; // bumped by each switch change: a poll begun before it must not undo it on screen

  function showEnabled(enabled) {
    button.setAttribute("aria-checked", String(enabled));
    pill.textContent = enabled ? "Enabled" : "Disabled";
    pill.className = "pill " + (enabled ? "pill-on" : "pill-off");
    form.querySelector("input[name=enabled]").value = String(!enabled);
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) { /* not JSON: fall through */ }
    return "The setting could not be saved (HTTP " + response.status + ").";
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (button.getAttribute("aria-busy") === "true") return;
    const before = button.getAttribute("aria-checked") === "true";
    showEnabled(!before); // optimistic; rolled back below if the origin refuses
    showError("");
    button.setAttribute("aria-busy", "true");
    writes += 1;
    try {
      const response = await fetch(form.dataset.settingsUrl, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ sms_failover_enabled: !before }),
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      const saved = await response.json();
      showEnabled(saved.sms_failover_enabled === true);
      announcer.textContent = "SMS failover " + (saved.sms_failover_enabled ? "enabled" : "disabled") + ".";
    } catch (error) {
      showEnabled(before);
      const message = error instanceof TypeError ? "The origin could not be reached; nothing was changed." : error.message;
      showError(message + " The switch was put back.");
    } finally {
      button.removeAttribute("aria-busy");
    }
  });

  function ms(value) { return value === null || value === undefined ? "–" : value + " ms"; }
  function pct(value) { return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %"; }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return seconds < 2 ? "just now" : seconds + " s ago";
  }

  function setField(root, name, text) {
    const node = root.querySelector("[data-field='" + name + "']");
    if (node && node.textContent !== text) node.textContent = text;
    return node;
  }

  function renderEndpoint(name, e) {
    const card = live.querySelector("[data-endpoint='" + name + "']");
    if (!card) return;
    const state = e.checked_at === null ? "unknown" : e.healthy ? "up" : "down";
    const badge = setField(card, "state", { up: "Up", down: "Down", unknown: "Not checked yet" }[state]);
    badge.className = "state state-" + state;
    setField(card, "latency_ms", ms(e.latency_ms));
    setField(card, "success_rate", pct(e.success_rate));
    setField(card, "p95_ms", ms(e.p95_ms));
    setField(card, "requests", String(e.requests));
    const checked = setField(card, "checked_at", ago(e.checked_at));
    checked.setAttribute("datetime", e.checked_at || "");
    if (lastStates[name] && lastStates[name] !== state) {
      announcer.textContent = name.charAt(0).toUpperCase() + name.slice(1) + " is " + badge.textContent.toLowerCase() + ".";
    }
    lastStates[name] = state;
  }

  function shardsText(ledger) {
    if (ledger.shards_error) return "no answer (" + ledger.shards_error + ")";
    if (!ledger.shards_checked_at) return "not checked yet";
    const answering = ledger.shards.filter(function (s) { return s.ok; }).length;
    return answering + " of " + ledger.shards.length + " answering";
  }

  function renderLedger(ledger, doubleSends) {
    setField(live, "edge_ledger", ledger.state + (ledger.config_fault ? " (refused our credentials)" : ""));
    const labels = { reachable: "Reachable", not_answering: "Not answering", unreachable: "Unreachable: local ledger" };
    const label = ledger.config_fault ? "Refusing our credentials" : labels[ledger.state] || ledger.state;
    const badge = setField(live, "edge_ledger_badge", label);
    if (badge) badge.className = "state state-" + (ledger.state === "reachable" && !ledger.config_fault ? "up" : "down");
    setField(live, "edge_ledger_since", ledger.since || "none since start");
    setField(live, "edge_ledger_shards", shardsText(ledger));
    setField(live, "double_sends_found", String(doubleSends));
  }

  function renderBreaker(b) {
    if (!breaker || !b) return;
    const state = setField(breaker, "breaker_state", b.state + (b.reachable === false ? " (Redis unreachable)" : ""));
    state.dataset.state = b.state;
    state.className = "breaker-" + b.state;
    setField(breaker, "breaker_failures", b.consecutive_failures === null || b.consecutive_failures === undefined ? "–" : String(b.consecutive_failures));
    const remaining = b.remaining_open_s;
    breaker.querySelector("[data-field='breaker_open_for']").hidden = !remaining;
    setField(breaker, "breaker_remaining_open_s", remaining ? Math.round(remaining) + " s" : "–");
    if (lastBreakerState !== null && lastBreakerState !== b.state) {
      announcer.textContent = "The shared breaker is " + b.state.replace("_", "-") + ".";
    }
    lastBreakerState = b.state;
  }

  // Server-rendered fragments (escaped by the origin's templates), redrawn only when they changed and never
  // under a keyboard user's focus (it would be lost).
  function swap(container, html, last) {
    if (!container || html === undefined || html === last || container.contains(document.activeElement)) return last;
    container.innerHTML = html;
    return html;
  }

  function render(body, writesAtRequest) {
    const status = body.status;
    renderEndpoint("origin", status.endpoints.origin);
    renderEndpoint("edge", status.endpoints.edge);
    setField(live, "failovers_15m", String(status.failovers_15m));
    setField(live, "unknown_15m", String(status.unknown_15m));
    setField(live, "ledger", status.ledger + (status.degraded ? " (degraded)" : ""));
    setField(live, "failover_state", status.failover_state);
    const passing = { enabling: "Enabling…", disabling: "Disabling…" }[status.failover_state];
    if (passing && pill && button.getAttribute("aria-busy") !== "true") pill.textContent = passing;
    renderLedger(status.edge_ledger, status.double_sends_found);
    renderBreaker(status.breaker);
    lastEvents = swap(events, body.events_html, lastEvents);
    lastUnknowns = swap(unknowns, body.unknowns_html, lastUnknowns);
    if (writesAtRequest === writes && button.getAttribute("aria-busy") !== "true") showEnabled(status.enabled === true);
    // Redraw only when the figures changed, and never under a keyboard user's focus (it would be lost).
    if (body.chart_html === lastChart || chart.contains(document.activeElement)) return;
    const details = chart.querySelector("details");
    const open = details !== null && details.open;
    chart.innerHTML = body.chart_html; // server-rendered and escaped by the origin's templates
    lastChart = body.chart_html;
    if (open) chart.querySelector("details").open = true;
  }

  function showFreshness() {
    if (sessionEnded) return; // keep the sign-in message: the clock must not paint over it
    const seconds = Math.round((Date.now() - lastUpdate) / 1000);
    const stale = seconds >= STALE_S;
    freshness.classList.toggle("stale", stale);
    freshness.textContent = stale
      ? "Live data is stale: last update " + seconds + " s ago (the origin is not answering)"
      : "Live · last update " + (seconds < 2 ? "just now" : seconds + " s ago");
  }

  async function poll() {
    const writesAtRequest = writes;
    try {
      const response = await fetch(live.dataset.liveUrl, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        sessionEnded = true;
        freshness.classList.add("stale");
        freshness.textContent = "Your session has ended; reload the page to sign in again.";
        return; // stop polling: nothing will succeed until the user signs in again
      }
      if (response.ok) {
        render(await response.json(), writesAtRequest);
        lastUpdate = Date.now();
        live.dataset.polls = String(Number(live.dataset.polls || "0") + 1); // lets a test wait for a poll
      }
    } catch (_) { /* network error: the freshness line turns amber */ }
    showFreshness();
    window.setTimeout(poll, POLL_MS);
  }

  for (const card of live.querySelectorAll("[data-endpoint]")) {
    lastStates[card.dataset.endpoint] = card.querySelector("[data-field='state']").className.replace("state state-", "");
  }
  let sessionEnded = false;
  window.setInterval(showFreshness, 1000);
  poll();
})();
