"use strict";
// The dashboard: a snapshot from GET /queue, /jobs and /config, then every change from GET /events
// (server-sent events). While the stream is down the snapshot is polled every 2 s instead. The admin
// token lives in this tab's sessionStorage only; it is sent in an Authorization header, never in a URL.
// Everything the server sends is shown with textContent: user ids and reasons are never parsed as HTML.

(() => {
  const TOKEN_KEY = "translation-sim.admin-token";
  const KINDS = ["submitted", "started", "retried", "completed", "failed", "permanently_failed", "cancelled",
    "removed", "progress"];
  const QUEUE_LIMIT = 500; // queued jobs a snapshot loads (the lanes show the head of a longer queue)
  const RECENT_LIMIT = 500; // newest submissions a snapshot loads, to find the recently finished ones
  const FINISHED_SHOWN = 20;
  const POLL_MS = 2000;
  const RECONNECT_MS = 5000;
  const WINDOW_MINUTES = 10;
  const OUTCOME_TEXT = { completed: "completed", permanently_failed: "permanently failed", cancelled: "cancelled" };

  const $ = (id) => document.getElementById(id);
  const state = {
    jobs: new Map(), // job_id -> {view, seen: performance.now() when the view arrived}
    lanes: { premium: [], free: [] }, // queued job ids in start order (the head of the queue)
    truncated: { premium: false, free: false }, // the snapshot did not hold the whole lane
    more: 0, // queued jobs beyond the lanes shown
    queuedTotal: 0,
    finished: [], // ids, newest first
    minutes: new Map(), // minute number -> {ok, bad}: attempts that ended
    config: null,
    user: null, // the user whose history is open
    userJobs: new Map(),
  };
  const runtimeKeys = new Set((document.body.dataset.runtimeKeys || "").split(",").filter(Boolean));
  let source = null;
  let lastEventId = null;
  let boot = null; // the server's numbering of events (it changes when the server restarts)
  let loading = null;
  let reloadAgain = false;
  let buffered = [];
  let pollTimer = null;
  let reconnectTimer = null;
  let renderTimer = null;
  let backfilled = false;

  // ---------------------------------------------------------------------------------------- helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function short(id) {
    return id.slice(0, 8);
  }

  function ago(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 90) return `${seconds} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  function showMessage(text, isError) {
    const message = $("message");
    message.textContent = text;
    message.dataset.kind = isError ? "error" : "info";
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return { body: await response.json(), headers: response.headers };
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function admin(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      cache: "no-store",
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401) lock();
      throw new Error((data && data.detail) || `${path} answered ${response.status}`);
    }
    return data;
  }

  function flatten(grouped) {
    const views = [];
    for (const roles of Object.values(grouped)) {
      for (const jobs of Object.values(roles)) views.push(...Object.values(jobs));
    }
    return views;
  }

  // ---------------------------------------------------------------------------------------- state

  function minuteOf(ms) {
    return Math.floor(ms / 60000);
  }

  function count(ms, ok) {
    const minute = minuteOf(ms);
    const bucket = state.minutes.get(minute) || { ok: 0, bad: 0 };
    bucket[ok ? "ok" : "bad"] += 1;
    state.minutes.set(minute, bucket);
  }

  function enqueue(role, id) {
    if (state.truncated[role]) state.more += 1; // it is behind jobs this page does not list
    else state.lanes[role].push(id);
  }

  function leaveLane(role, id) {
    const lane = state.lanes[role];
    const index = lane.indexOf(id);
    if (index < 0) return false;
    lane.splice(index, 1);
    if (lane.length < 20 && state.more > 0) reloadSoon(); // show the next part of a long queue
    return true;
  }

  // Put a job's newest view in its place; an older view than the one shown is ignored.
  function upsert(view, live) {
    const known = state.jobs.get(view.job_id);
    const old = known ? known.view : null;
    if (old && old.version > view.version) return;
    state.jobs.set(view.job_id, { view, seen: performance.now() });
    if (state.user === view.user_id) state.userJobs.set(view.job_id, view);
    const requeued = old && old.stage !== "queued" && view.stage === "queued";
    if (view.stage === "queued") {
      if (requeued) leaveLane(view.role, view.job_id);
      if (requeued || !state.lanes[view.role].includes(view.job_id)) enqueue(view.role, view.job_id);
    } else if (old && old.stage === "queued") {
      leaveLane(view.role, view.job_id);
    }
    if (!live) return;
    if (view.status === "failed" && (!old || old.attempts !== view.attempts || old.status !== "failed")) {
      count(Date.now(), false);
    }
    if (view.stage === "finished" && (!old || old.stage !== "finished")) {
      if (view.status === "completed") count(Date.now(), true);
      else if (view.status === "permanently_failed") count(Date.now(), false);
      addFinished(view.job_id);
    }
  }

  function addFinished(id) {
    state.finished = [id, ...state.finished.filter((other) => other !== id)];
    for (const gone of state.finished.splice(FINISHED_SHOWN)) {
      const entry = state.jobs.get(gone);
      if (entry && entry.view.stage === "finished") state.jobs.delete(gone);
    }
  }

  function forget(id) {
    const entry = state.jobs.get(id);
    if (entry) leaveLane(entry.view.role, id);
    state.jobs.delete(id);
    state.userJobs.delete(id);
    state.finished = state.finished.filter((other) => other !== id);
  }

  function applyEvent(data) {
    if (data.kind === "removed" || !data.job) forget(data.job_id);
    else upsert(data.job, true);
    scheduleRender();
  }

  function applySnapshot(queue, recent, config) {
    // While polling, the attempts that ended between two snapshots are counted from their difference.
    const previous = state.jobs;
    if (backfilled) {
      for (const view of [...recent, ...queue.queued, ...queue.running]) {
        const old = previous.get(view.job_id);
        if (!old || old.view.version >= view.version) continue;
        if (view.status === "completed") count(Date.now(), true);
        else if (view.status === "permanently_failed" || (view.status === "failed" && old.view.attempts !== view.attempts)) {
          count(Date.now(), false);
        }
      }
    }
    state.jobs = new Map();
    state.lanes = { premium: [], free: [] };
    const queued = queue.queued;
    const truncated = queue.queued_total > queued.length;
    const anyFree = queued.some((job) => job.role === "free");
    state.truncated = { premium: truncated && !anyFree, free: truncated };
    state.more = queue.queued_total - queued.length;
    for (const view of queued) {
      state.jobs.set(view.job_id, { view, seen: performance.now() });
      state.lanes[view.role].push(view.job_id);
    }
    for (const view of queue.running) state.jobs.set(view.job_id, { view, seen: performance.now() });
    const finished = recent.filter((view) => view.done).sort((a, b) => Date.parse(b.finished_at) - Date.parse(a.finished_at));
    state.finished = finished.slice(0, FINISHED_SHOWN).map((view) => view.job_id);
    for (const view of finished.slice(0, FINISHED_SHOWN)) state.jobs.set(view.job_id, { view, seen: performance.now() });
    if (!backfilled) {
      // Attempts that ended before the page opened, as far as the newest jobs tell.
      const since = Date.now() - WINDOW_MINUTES * 60000;
      for (const view of recent) {
        if (view.status === "completed" && Date.parse(view.finished_at) >= since) count(Date.parse(view.finished_at), true);
        if (view.error && Date.parse(view.error.at) >= since) count(Date.parse(view.error.at), false);
      }
      backfilled = true;
    }
    state.config = config;
  }

  async function recentJobs() {
    const head = await getJSON("/jobs?limit=1");
    const total = Number(head.headers.get("X-Total-Count") || 0);
    const offset = Math.max(0, total - RECENT_LIMIT);
    const page = await getJSON(`/jobs?offset=${offset}&limit=${RECENT_LIMIT}`);
    return flatten(page.body);
  }

  function reload() {
    if (loading) {
      reloadAgain = true;
      return loading;
    }
    loading = (async () => {
      try {
        const [queue, recent, config] = await Promise.all([
          getJSON(`/queue?limit=${QUEUE_LIMIT}`), recentJobs(), getJSON("/config")]);
        applySnapshot(queue.body, recent, config.body);
        const events = buffered;
        buffered = [];
        for (const data of events) applyEvent(data);
        if (state.user) await loadUser(state.user);
        if ($("message").dataset.kind === "error" && $("message").textContent.startsWith("Cannot reach")) {
          showMessage("", false);
        }
      } catch (error) {
        showMessage(`Cannot reach the server: ${error.message}`, true);
      } finally {
        loading = null;
        scheduleRender();
        if (reloadAgain) {
          reloadAgain = false;
          reload();
        }
      }
    })();
    return loading;
  }

  let reloadSoonTimer = null;
  function reloadSoon() {
    if (!reloadSoonTimer) reloadSoonTimer = setTimeout(() => { reloadSoonTimer = null; reload(); }, 1000);
  }

  // ---------------------------------------------------------------------------------------- the stream

  function setMode(mode) {
    const badge = $("connection");
    badge.dataset.state = mode;
    badge.textContent = { live: "live", polling: "polling (stream down)", connecting: "connecting…" }[mode];
  }

  function startPolling() {
    if (pollTimer) return;
    reload();
    pollTimer = setInterval(reload, POLL_MS);
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  function remember(event) {
    if (event.lastEventId) lastEventId = event.lastEventId;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    const query = lastEventId !== null ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
    source = new EventSource(`/events${query}`);
    source.addEventListener("ready", (event) => {
      remember(event);
      setMode("live");
      stopPolling();
      const data = JSON.parse(event.data);
      // Resumed by a restarted server (another boot), our event id meant something else there: reload.
      if (!data.resumed || (boot !== null && data.boot !== boot)) reload();
      boot = data.boot;
    });
    source.addEventListener("reset", (event) => {
      remember(event);
      setMode("live");
      stopPolling();
      boot = JSON.parse(event.data).boot;
      reload();
    });
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => {
        remember(event);
        const data = JSON.parse(event.data);
        if (loading) buffered.push(data);
        else applyEvent(data);
      });
    }
    source.onerror = () => {
      setMode("polling");
      startPolling();
      // CONNECTING: the browser reconnects by itself (with Last-Event-ID); CLOSED: it gave up (e.g. a 503).
      if (source.readyState === EventSource.CLOSED) reconnectTimer = setTimeout(connect, RECONNECT_MS);
    };
  }

  // ---------------------------------------------------------------------------------------- drawing

  function scheduleRender() {
    if (!renderTimer) renderTimer = setTimeout(render, 30);
  }

  // Make `container`'s children the rows of `ids`, in order, reusing each job's row (so bars animate).
  function syncList(container, ids, make, update) {
    const existing = new Map();
    for (const row of container.children) existing.set(row.dataset.jobId, row);
    ids.forEach((id, index) => {
      let row = existing.get(id);
      if (row) existing.delete(id);
      else row = make(id);
      update(row, id, index);
      const here = container.children[index];
      if (here !== row) container.insertBefore(row, here || null);
    });
    for (const row of existing.values()) row.remove();
  }

  function jobRow(id) {
    const row = el("li", "job");
    row.dataset.jobId = id;
    const position = el("span", "position");
    const role = el("span", "role");
    const ident = el("span", "id", short(id));
    ident.title = id;
    const user = el("button", "user");
    user.type = "button";
    user.addEventListener("click", () => openUser(user.textContent));
    const attempts = el("span", "attempts");
    const cancel = el("button", "cancel admin-only", "cancel");
    cancel.type = "button";
    cancel.hidden = !token();
    cancel.addEventListener("click", () => cancelJob(id));
    row.append(position, role, ident, user, attempts, el("span", "spacer"), el("span", "eta"), cancel);
    return row;
  }

  function fillRow(row, view) {
    row.dataset.stage = view.stage;
    const role = row.querySelector(".role");
    role.textContent = view.role;
    role.dataset.role = view.role;
    row.querySelector(".user").textContent = view.user_id;
    row.querySelector(".cancel").hidden = !token() || view.done;
  }

  function renderLanes() {
    const premium = state.lanes.premium;
    for (const role of ["premium", "free"]) {
      const offset = role === "premium" ? 0 : premium.length;
      syncList($(`lane-${role}`), state.lanes[role], jobRow, (row, id, index) => {
        const view = state.jobs.get(id).view;
        fillRow(row, view);
        row.querySelector(".position").textContent = `#${offset + index + 1}`;
        row.querySelector(".attempts").textContent = view.attempts ? `retry ${view.attempts}/${view.max_retries}` : "";
      });
      $(`${role}-count`).textContent = state.lanes[role].length ? `(${state.lanes[role].length})` : "";
    }
    const total = premium.length + state.lanes.free.length + state.more;
    $("queued-total").textContent = `${total} queued`;
    $("free-more").hidden = !state.more;
    $("free-more").textContent = `and ${state.more} more queued behind these`;
  }

  function runningIds() {
    const running = [];
    for (const [id, entry] of state.jobs) if (entry.view.stage === "translating") running.push([entry.view.updated_at, id]);
    running.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return running.map(([, id]) => id);
  }

  function runningRow(id) {
    const row = jobRow(id);
    const bar = el("div", "bar");
    bar.append(el("div", "fill"));
    row.insertBefore(el("span", "progress-text"), row.querySelector(".cancel"));
    row.append(bar);
    return row;
  }

  function renderRunning() {
    const ids = runningIds();
    syncList($("running"), ids, runningRow, (row, id) => {
      const view = state.jobs.get(id).view;
      fillRow(row, view);
      row.querySelector(".position").textContent = "";
      row.querySelector(".attempts").textContent = view.attempts > 1 ? `retry ${view.attempts - 1}` : "";
      row.querySelector(".progress-text").textContent = `${view.progress}%`;
      const fill = row.querySelector(".fill");
      fill.style.width = `${view.progress}%`;
      row.dataset.progress = String(view.progress);
    });
    $("running-count").textContent = `(${ids.length})`;
    tick();
  }

  function finishedRow(id) {
    const row = el("li", "job");
    row.dataset.jobId = id;
    const ident = el("span", "id", short(id));
    ident.title = id;
    const user = el("button", "user");
    user.type = "button";
    user.addEventListener("click", () => openUser(user.textContent));
    row.append(el("span", "outcome"), el("span", "role"), ident, user, el("span", "attempts"), el("span", "spacer"),
      el("span", "when"));
    return row;
  }

  function renderFinished() {
    const ids = state.finished.filter((id) => state.jobs.has(id));
    syncList($("finished"), ids, finishedRow, (row, id) => {
      const view = state.jobs.get(id).view;
      row.dataset.outcome = view.status;
      row.querySelector(".outcome").textContent = OUTCOME_TEXT[view.status] || view.status;
      const role = row.querySelector(".role");
      role.textContent = view.role;
      role.dataset.role = view.role;
      row.querySelector(".user").textContent = view.user_id;
      row.querySelector(".attempts").textContent = `×${view.attempts}`;
      row.querySelector(".attempts").title = `${view.attempts} attempt${view.attempts === 1 ? "" : "s"}`;
      const when = row.querySelector(".when");
      when.dataset.at = view.finished_at || "";
      when.textContent = ago(view.finished_at);
      row.title = view.cancel_reason ? `reason: ${view.cancel_reason}` : view.error ? `${view.error.code}: ${view.error.message}` : "";
    });
  }

  function renderThroughput() {
    const svg = $("throughput");
    const ns = "http://www.w3.org/2000/svg";
    const now = minuteOf(Date.now());
    const minutes = [];
    for (let m = now - WINDOW_MINUTES + 1; m <= now; m += 1) minutes.push(state.minutes.get(m) || { ok: 0, bad: 0 });
    for (const old of [...state.minutes.keys()]) if (old <= now - WINDOW_MINUTES) state.minutes.delete(old);
    const top = Math.max(1, ...minutes.map((b) => b.ok + b.bad));
    svg.replaceChildren();
    const width = 300 / WINDOW_MINUTES;
    minutes.forEach((bucket, i) => {
      const x = i * width + 3;
      const okHeight = (bucket.ok / top) * 80;
      const badHeight = (bucket.bad / top) * 80;
      for (const [cls, height, y] of [["ok", okHeight, 88 - okHeight], ["bad", badHeight, 88 - okHeight - badHeight]]) {
        const rect = document.createElementNS(ns, "rect");
        rect.setAttribute("class", cls);
        rect.setAttribute("x", String(x));
        rect.setAttribute("y", String(y));
        rect.setAttribute("width", String(width - 6));
        rect.setAttribute("height", String(height));
        svg.append(rect);
      }
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", String(x));
      label.setAttribute("y", "97");
      label.textContent = i === WINDOW_MINUTES - 1 ? "now" : `-${WINDOW_MINUTES - 1 - i}m`;
      svg.append(label);
    });
    const ok = minutes.reduce((sum, b) => sum + b.ok, 0);
    const bad = minutes.reduce((sum, b) => sum + b.bad, 0);
    const rate = ok + bad ? Math.round((bad / (ok + bad)) * 100) : 0;
    $("throughput-text").textContent =
      `${ok} completed (${(ok / WINDOW_MINUTES).toFixed(1)}/min), ${bad} failed attempts — error rate ${rate}%`;
  }

  function renderConfig() {
    const body = $("config").querySelector("tbody");
    if (!state.config || body.contains(document.activeElement)) return; // never under the cursor of someone editing
    const editable = Boolean(token());
    const rows = Object.entries(state.config).map(([key, value]) => {
      const row = el("tr");
      const cell = el("td");
      if (editable && runtimeKeys.has(key)) {
        const input = el("input");
        input.dataset.key = key;
        input.dataset.current = JSON.stringify(value);
        input.value = value === null ? "" : String(value);
        cell.append(input);
      } else {
        cell.textContent = value === null ? "unset" : String(value);
      }
      row.append(el("td", "", key), cell);
      return row;
    });
    body.replaceChildren(...rows);
  }

  async function refreshConfig() {
    try {
      state.config = (await getJSON("/config")).body;
      renderConfig();
    } catch (error) {
      // the stream's error handler reports an unreachable server
    }
  }

  function renderUser() {
    const section = $("user-section");
    section.hidden = !state.user;
    if (!state.user) return;
    $("user-name").textContent = state.user;
    const views = [...state.userJobs.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    const rows = views.map((view) => {
      const row = el("tr");
      row.dataset.jobId = view.job_id;
      row.append(el("td", "id", short(view.job_id)), el("td", "", view.role), el("td", "", view.status),
        el("td", "", String(view.attempts)), el("td", "", ago(view.created_at)), el("td", "", ago(view.finished_at)));
      return row;
    });
    $("user-history").querySelector("tbody").replaceChildren(...rows);
  }

  function render() {
    renderTimer = null;
    renderLanes();
    renderRunning();
    renderFinished();
    renderThroughput();
    renderUser();
    renderConfig();
    const running = runningIds().length;
    $("counts").textContent = `${state.jobs.size ? "" : "no jobs yet · "}${running} running`;
  }

  // Between events: count ETAs down and age the finished times.
  function tick() {
    for (const row of $("running").children) {
      const entry = state.jobs.get(row.dataset.jobId);
      if (!entry || entry.view.eta_seconds === null) continue;
      const left = Math.max(0, entry.view.eta_seconds - (performance.now() - entry.seen) / 1000);
      row.querySelector(".eta").textContent = `${left.toFixed(left < 10 ? 1 : 0)} s`;
      row.querySelector(".eta").title = "ETA: seconds until this attempt ends";
    }
    for (const when of $("finished").querySelectorAll(".when")) when.textContent = ago(when.dataset.at);
  }

  // ---------------------------------------------------------------------------------------- actions

  async function cancelJob(id) {
    try {
      const answer = await admin("POST", `/cancel/${encodeURIComponent(id)}`, { reason: "cancelled from the dashboard" });
      upsert(answer.job, true);
      scheduleRender();
      showMessage(`Job ${short(id)} cancelled.`, false);
    } catch (error) {
      showMessage(`Cancel failed: ${error.message}`, true);
    }
  }

  async function processJobs() {
    const count = Number($("process-count").value || 1);
    try {
      const answer = await admin("POST", "/process_jobs", { count });
      showMessage(`Started ${answer.count} job${answer.count === 1 ? "" : "s"}; ${answer.queued} still queued.`, false);
    } catch (error) {
      showMessage(`Process failed: ${error.message}`, true);
    }
  }

  async function cleanup() {
    const statuses = [...document.querySelectorAll(".cleanup-status:checked")].map((box) => box.value);
    if (!statuses.length) {
      showMessage("Choose at least one status to clean up.", true);
      return;
    }
    try {
      const answer = await admin("POST", "/cleanup", { statuses });
      showMessage(`Removed ${answer.removed} finished job${answer.removed === 1 ? "" : "s"}.`, false);
    } catch (error) {
      showMessage(`Cleanup failed: ${error.message}`, true);
    }
  }

  async function applyConfig() {
    const changes = {};
    for (const input of $("config").querySelectorAll("input[data-key]")) {
      const current = JSON.parse(input.dataset.current);
      const text = input.value.trim();
      if (text === (current === null ? "" : String(current))) continue;
      changes[input.dataset.key] = typeof current === "number" && text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
    }
    if (!Object.keys(changes).length) {
      showMessage("Nothing changed.", false);
      return;
    }
    try {
      state.config = await admin("POST", "/config", changes);
      if ($("config").contains(document.activeElement)) document.activeElement.blur();
      renderConfig();
      showMessage(`Configuration changed: ${Object.entries(changes).map(([k, v]) => `${k}=${v}`).join(", ")}.`, false);
    } catch (error) {
      showMessage(`Configuration refused: ${error.message}`, true);
    }
  }

  async function loadUser(user) {
    const answer = await getJSON(`/jobs?user_id=${encodeURIComponent(user)}`);
    if (state.user !== user) return;
    state.userJobs = new Map(flatten(answer.body).map((view) => [view.job_id, view]));
  }

  async function openUser(user) {
    state.user = user;
    state.userJobs = new Map();
    try {
      await loadUser(user);
    } catch (error) {
      showMessage(`Cannot load the history of ${user}: ${error.message}`, true);
    }
    scheduleRender();
  }

  function showAdmin() {
    const unlocked = Boolean(token());
    $("admin-locked").hidden = unlocked;
    $("admin-unlocked").hidden = !unlocked;
    for (const node of document.querySelectorAll(".admin-only")) {
      node.hidden = !unlocked || (node.classList.contains("cancel") && node.closest("#finished") !== null);
    }
    scheduleRender();
    renderConfig();
  }

  function unlock() {
    const value = $("token").value.trim();
    if (!value) {
      showMessage("Enter the server's ADMIN_TOKEN first.", true);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showMessage("Admin actions on for this tab.", false);
    showAdmin();
  }

  function lock() {
    sessionStorage.removeItem(TOKEN_KEY);
    showAdmin();
  }

  // ---------------------------------------------------------------------------------------- start

  $("token-save").addEventListener("click", unlock);
  $("token").addEventListener("keydown", (event) => { if (event.key === "Enter") unlock(); });
  $("token-forget").addEventListener("click", () => { lock(); showMessage("Admin actions off.", false); });
  $("process").addEventListener("click", processJobs);
  $("cleanup").addEventListener("click", cleanup);
  $("config-apply").addEventListener("click", applyConfig);
  $("user-close").addEventListener("click", () => { state.user = null; scheduleRender(); });
  showAdmin();
  setMode("connecting");
  if (typeof EventSource === "function") connect();
  else startPolling();
  setInterval(tick, 250);
  setInterval(renderThroughput, 15000);
  setInterval(refreshConfig, 10000); // changes of the configuration are not events
})();
