// Flywheel console: plain JavaScript over the control plane's API. Nothing to build.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: sessionStorage.getItem("flywheel-token"), role: null, view: null,
  tasks: [], item: null, timer: null, cycle: null };
const COLORS = ["#2457c5", "#b42318", "#1a7f37", "#9a6700", "#6e40c9", "#0e7490"];

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
const short = (id) => (id ? esc(String(id).slice(0, 12)) : "base model");
const when = (iso) => (iso ? esc(iso.replace("T", " ").slice(0, 19)) : "");
const num = (v, d = 3) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(d));

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Authorization": `Bearer ${state.token}`, "Content-Type": "application/json" },
  });
  if (response.status === 401) { logout("Your token was refused: log in again."); throw new Error("401"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail ? JSON.stringify(body.detail) : response.statusText);
  return body;
}

// -- log in and navigation -------------------------------------------------------------------
async function login(token) {
  state.token = token;
  try {
    const who = await api("/v1/whoami");
    state.role = who.role;
    sessionStorage.setItem("flywheel-token", token);
    $("#who").textContent = `${who.name} (${who.role})`;
    $("#login").hidden = true;
    $("#tabs").hidden = false;
    $("#logout").hidden = false;
    for (const b of document.querySelectorAll("#tabs button")) {
      b.hidden = !(state.role === "admin" || b.dataset.roles === state.role);
    }
    state.tasks = await api("/v1/tasks");
    fillTaskSelects();
    show(state.role === "reviewer" ? "review" : "overview");
  } catch (error) {
    if (error.message !== "401") $("#login-error").textContent = `Cannot log in: ${error.message}`;
  }
}

function logout(message = "") {
  sessionStorage.removeItem("flywheel-token");
  state.token = null;
  clearInterval(state.timer);
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("#login").hidden = false;
  $("#tabs").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login-error").textContent = message;
}

function fillTaskSelects() {
  const options = state.tasks.map((t) => `<option value="${esc(t.name)}">${esc(t.name)}</option>`).join("");
  $("#review-task").innerHTML = `<option value="">all tasks</option>${options}`;
  $("#adapter-task").innerHTML = options;
  $("#live-task").innerHTML = options;
  const served = state.tasks.find((t) => t.champion);  // open on a task with a champion
  if (served) $("#adapter-task").value = $("#live-task").value = served.name;
}

function show(view) {
  state.view = view;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  for (const b of document.querySelectorAll("#tabs button")) {
    b.setAttribute("aria-current", b.dataset.view === view ? "page" : "false");
  }
  clearInterval(state.timer);
  const refresh = { overview: loadOverview, review: loadQueue, cycles: loadCycles,
    adapters: loadAdapters, audit: loadAudit, live: loadLive }[view];
  refresh();
  if (view !== "review") state.timer = setInterval(refresh, 3000);
  if (view === "review" && !state.item) nextItem();
}

// -- charts (inline SVG) ---------------------------------------------------------------------
// ``rules``: horizontal dashed lines across the plot (a decision boundary), ``{ y, label }``.
function lineChart(series, { yLabel = "", yMin = null, yMax = null, width = 640, height = 220, xFormat = null, rules = [] } = {}) {
  const points = series.flatMap((s) => s.points).filter((p) => p.y !== null && p.y !== undefined);
  if (!points.length) return `<p class="muted">No data yet.</p>`;
  const xs = points.map((p) => p.x);
  const ys = [...points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]), ...rules.map((r) => r.y)];
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 1; x1 += 1; }  // one point: draw it in the middle
  const lo = yMin ?? Math.min(...ys), hi = yMax ?? (Math.max(...ys) === lo ? lo + 1 : Math.max(...ys));
  const L = 48, R = 16, T = 26, B = 30;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (width - L - R);
  const sy = (y) => height - B - ((y - lo) / (hi - lo)) * (height - T - B);
  let svg = `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(yLabel)}">`;
  svg += `<text x="4" y="14" font-size="11" font-weight="600">${esc(yLabel)}</text>`;
  for (let i = 0; i <= 4; i++) {
    const y = lo + ((hi - lo) * i) / 4;
    svg += `<line x1="${L}" x2="${width - R}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e5e8ee"/>`;
    svg += `<text x="${L - 6}" y="${sy(y) + 4}" font-size="10" text-anchor="end">${num(y, 2)}</text>`;
  }
  if (xFormat) {
    for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
      svg += `<text x="${sx(x)}" y="${height - 10}" font-size="10" text-anchor="middle">${esc(xFormat(x))}</text>`;
    }
  }
  for (const r of rules) {
    svg += `<line class="rule" x1="${L}" x2="${width - R}" y1="${sy(r.y)}" y2="${sy(r.y)}" stroke="#1d2430" stroke-dasharray="6 4"/>`;
    svg += `<text x="${width - R}" y="${sy(r.y) - 4}" font-size="10" text-anchor="end">${esc(r.label)}</text>`;
  }
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const shown = s.points.filter((p) => p.y !== null && p.y !== undefined);
    const path = shown.map((p, i) => `${i ? "L" : "M"}${sx(p.x)},${sy(p.y)}`).join(" ");
    if (shown.length > 1 && !s.dotsOnly) svg += `<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`;
    for (const p of shown) {
      if (p.lo !== undefined) svg += `<line x1="${sx(p.x)}" x2="${sx(p.x)}" y1="${sy(p.lo)}" y2="${sy(p.hi)}" stroke="${color}" stroke-width="2"/>`;
      svg += `<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="${p.big ? 6 : 4}" fill="${p.hollow ? "#fff" : color}" stroke="${color}" stroke-width="2"><title>${esc(p.label ?? "")}</title></circle>`;
    }
  });
  svg += `</svg>`;
  const legend = series.map((s, k) => `<span style="color:${COLORS[k % COLORS.length]}">● ${esc(s.name)}</span>`).join("");
  return svg + `<div class="legend">${legend}</div>`;
}
const clock = (x) => new Date(x).toISOString().slice(5, 16).replace("T", " ");
const t = (iso) => Date.parse(iso.endsWith("Z") ? iso : `${iso}Z`);

// -- overview ----------------------------------------------------------------------------------
async function loadOverview() {
  state.tasks = await api("/v1/tasks");
  const alerts = await api("/v1/drift-alerts?limit=10");
  $("#drift-alerts").innerHTML = alerts.length ? `<div class="card alerts" role="alert"><h2>Drift alerts</h2>
    <ul>${alerts.map((a) => `<li data-task="${esc(a.task)}"><strong>${esc(a.task)}</strong>: champion
      <code>${short(a.adapter_id)}</code> worse than ${esc(BASELINES[a.baseline] ?? a.baseline)} ·
      policy ${esc(a.action)} · ${when(a.raised_at)}<br><span class="muted">${esc(a.reason)}</span></li>`).join("")}</ul></div>` : "";
  const cards = [];
  for (const task of state.tasks) {
    const growth = await api(`/v1/tasks/${encodeURIComponent(task.name)}/growth`);
    const chart = lineChart([{ name: "ground-truth examples", points: growth.points.map((p) => ({
      x: t(p.t), y: p.cumulative, label: `${p.t}: ${p.cumulative}` })) }],
      { yLabel: "ground-truth examples (cumulative)", yMin: 0, width: 320, height: 160 });
    const sources = Object.entries(growth.by_source).map(([k, v]) => `${esc(k)} ${v}`).join(" · ");
    cards.push(`<div class="card" data-task="${esc(task.name)}"><h2>${esc(task.name)}</h2>
      <p>${esc(task.kind)} task · metric ${esc(task.metric ?? task.primary_metric ?? "")} · gate ${esc(task.gate.mode)}</p>
      <p>Champion: <code class="champion">${short(task.champion)}</code></p>
      <p>${growth.total} ground-truth examples <span class="muted">(${sources})</span></p>${chart}</div>`);
  }
  $("#task-cards").innerHTML = cards.join("") || `<p class="muted">No tasks yet: <code>flywheel task create</code>.</p>`;
}

// -- review queue ------------------------------------------------------------------------------
async function loadQueue() {
  const task = $("#review-task").value;
  const q = await api(`/v1/review/queue${task ? `?task=${encodeURIComponent(task)}` : ""}`);
  const parts = Object.entries(q.by_reason).map(([k, v]) => `${esc(k)}: ${v}`).join(" · ");
  $("#queue-counts").innerHTML = `${q.pending} waiting <span class="muted">(${parts})</span>`;
}

async function nextItem() {
  const task = $("#review-task").value || null;
  const { item } = await api("/v1/review/lease", { method: "POST", body: JSON.stringify({ task }) });
  state.item = item;
  renderItem();
  loadQueue();
}

function renderItem() {
  const item = state.item;
  if (!item) {
    $("#review-item").innerHTML = `<p class="muted" id="queue-empty">Nothing to review. Press <kbd>n</kbd> to check again.</p>`;
    return;
  }
  const feedback = item.feedback.map((f) => `<li>${esc(f.signal)}${f.rating ? ` ${f.rating}/5` : ""}
    ${f.edited_output ? `: <q>${esc(f.edited_output)}</q>` : ""} <span class="muted">${when(f.occurred_at)}</span></li>`).join("");
  $("#review-item").innerHTML = `<div class="item" data-inference="${esc(item.inference_id)}">
    <p><strong>${esc(item.task)}</strong> · why: <span id="item-reason">${esc(item.reason)}</span> ·
      confidence ${num(item.mean_logprob)} · adapter <code>${short(item.adapter_id)}</code> ·
      lease until ${when(item.lease_expires_at)}</p>
    <h3>Input</h3><pre id="item-input">${esc(item.input)}</pre>
    <h3>Model output</h3><pre id="item-output">${esc(item.output)}</pre>
    <h3>Feedback</h3>${feedback ? `<ul>${feedback}</ul>` : `<p class="muted">none</p>`}
    <label for="correction">Correction</label>
    <textarea id="correction" placeholder="Type the right output, then Ctrl+Enter">${esc(item.output)}</textarea>
    <div class="row"><button class="primary" id="approve">Approve as is (a)</button>
      <button id="send-correction">Send correction (Ctrl+Enter)</button>
      <button id="skip">Skip (s)</button></div></div>`;
  $("#approve").onclick = approve;
  $("#send-correction").onclick = correct;
  $("#skip").onclick = skip;
}

async function verdict(path, body, message) {
  const item = state.item;
  if (!item) return;
  try {
    await api(`/v1/review/items/${encodeURIComponent(item.inference_id)}/${path}`,
      { method: "POST", body: JSON.stringify(body) });
    $("#review-status").textContent = message;
    state.item = null;
    await nextItem();
  } catch (error) {
    $("#review-status").textContent = `Not saved: ${error.message}`;
  }
}
const approve = () => verdict("approve", {}, "Approved.");
const correct = () => verdict("correct", { corrected_output: $("#correction").value }, "Correction sent.");
const skip = () => verdict("skip", {}, "Skipped.");

// -- cycles ------------------------------------------------------------------------------------
async function loadCycles() {
  const cycles = await api("/v1/cycles");
  $("#cycle-table tbody").innerHTML = cycles.map((c) => {
    const p = c.progress || {};
    const running = !["decided", "failed"].includes(c.state);
    const bar = running && p.total ? ` <progress max="${p.total}" value="${p.step}"></progress>` : "";
    return `<tr tabindex="0" data-cycle="${esc(c.cycle_id)}"><td>${when(c.started_at)}</td><td>${esc(c.task)}</td>
      <td>${esc(c.trigger)}</td><td>${esc(c.state)}${bar}</td>
      <td class="verdict-${esc(c.verdict || c.state)}">${esc(c.verdict || "")}</td><td><code>${short(c.adapter_id)}</code></td></tr>`;
  }).join("");
  for (const row of document.querySelectorAll("#cycle-table tbody tr")) {
    row.onclick = () => showCycle(row.dataset.cycle);
    row.onkeydown = (e) => { if (e.key === "Enter") showCycle(row.dataset.cycle); };
  }
  if (state.cycle) showCycle(state.cycle, false);
}

function sideBySide(rows, title) {
  if (!rows || !rows.length) return "";
  return `<h4>${esc(title)}</h4><table><thead><tr><th>Input</th><th>Reference</th><th>Candidate</th><th>Champion</th></tr></thead><tbody>${
    rows.map((r) => `<tr><td title="${esc(r.id)}">${esc((r.input ?? r.id ?? "").slice(0, 160))}</td><td>${esc(r.reference)}</td><td>${esc(r.candidate)}</td><td>${esc(r.champion)}</td></tr>`).join("")}</tbody></table>`;
}

// The learning curve of a cycle: training loss per step (the candidate's run, and each
// search trial's), each trial's development loss as it trained, chance level for label
// tasks, and each trial's development-split metric.
function learningCurve(training) {
  const curve = training.loss_curve || [];
  if (!curve.length) return "";
  const search = training.search || {}, trials = search.trials || [];
  const series = [{ name: "training loss (candidate)", points: curve.map(([x, y]) => ({ x, y, label: `step ${x}: ${num(y)}` })) }];
  trials.forEach((t) => series.push({ name: `search trial, learning rate ${t.learning_rate}`,
    points: t.loss_curve.map(([x, y]) => ({ x, y, label: `step ${x}: ${num(y)}` })) }));
  trials.filter((t) => (t.dev_curve || []).length).forEach((t) => series.push({
    name: `development loss, learning rate ${t.learning_rate}`,
    points: t.dev_curve.map(([x, y]) => ({ x, y, label: `step ${x}: development loss ${num(y)}` })) }));
  if (training.chance_loss) {
    series.push({ name: "chance level", points: [{ x: 1, y: training.chance_loss, label: "guessing among the labels" },
      { x: curve[curve.length - 1][0], y: training.chance_loss, label: "guessing among the labels" }] });
  }
  let html = lineChart(series, { yLabel: "loss per step (training; development)", yMin: 0 });
  if (trials.length) {
    html += lineChart([{ name: `${search.metric} on ${search.dev_examples} development examples (large: chosen)`, dotsOnly: true,
      points: trials.map((t, i) => ({ x: i, y: t.dev_metric, big: i === search.winner_trial,
        label: `learning rate ${t.learning_rate}, ${t.steps} steps: ${num(t.dev_metric)}` })) }],
      { yLabel: "development metric per trial", xFormat: (i) => `lr ${trials[i].learning_rate}`, width: 420, height: 180,
        ...(search.metric === "nll" ? {} : { yMin: 0, yMax: 1 }) });
  }
  return html;
}

function searchLine(search) {
  if (!search || !Object.keys(search).length) return "";
  const text = [search.skipped || search.reason || "", search.stopped_early || ""].filter(Boolean).join("; ");
  const budget = search.budget ? ` <span class="muted">Budget: ${esc(search.budget)}.</span>` : "";
  return `<p id="cycle-search">Learning-rate search: ${esc(text)}.${budget}</p>`;
}

async function showCycle(cycleId, scroll = true) {
  state.cycle = cycleId;
  const c = await api(`/v1/cycles/${encodeURIComponent(cycleId)}`);
  const d = c.decision || { reasons: [], evidence: {} };
  const ev = d.evidence || {}, e = ev.eval || {}, r = ev.regression || {}, tr = ev.training || {};
  const why = ev.diagnosis || [];
  const interval = e.n ? lineChart([{ name: `improvement of ${ev.metric} (95% CI)`, dotsOnly: true,
    points: [{ x: 0, y: e.delta_mean, lo: e.delta_low, hi: e.delta_high, big: true,
      label: `${num(e.delta_low)} .. ${num(e.delta_high)}` }] }],
    { yLabel: "candidate − champion", yMin: Math.min(-0.1, e.delta_low), yMax: Math.max(0.1, e.delta_high), width: 260, height: 160 }) : "";
  const actions = c.verdict === "await_approval" ? `<div class="row"><button class="primary" id="approve-cycle">Approve and promote</button>
    <button id="reject-cycle">Reject</button></div>` : "";
  $("#cycle-detail").innerHTML = `<div class="card"><h2>Cycle <code>${esc(c.cycle_id)}</code> · ${esc(c.task)}</h2>
    <p>State ${esc(c.state)} · verdict <span id="cycle-verdict" class="verdict-${esc(c.verdict)}">${esc(c.verdict || "pending")}</span>
      · candidate <code>${short(c.adapter_id)}</code></p>
    ${c.error ? `<p class="error">${esc(c.error)}</p>` : ""}
    <ul>${(d.reasons || []).map((x) => `<li>${esc(x)}</li>`).join("")}</ul>${actions}
    ${why.length ? `<h3>${c.verdict === "reject" ? "Why it failed" : "Notes"}</h3>
      <ul id="cycle-why">${why.map((x) => `<li>${esc(x)}</li>`).join("")}</ul>` : ""}
    ${tr.loss_curve ? `<h3>Learning curve</h3>${searchLine(tr.search)}<div id="learning-curve" class="chart">${learningCurve(tr)}</div>` : ""}
    ${e.n ? `<p>Eval (${e.n} examples): champion ${num(e.champion)} → candidate ${num(e.candidate)};
      ${e.wins} wins, ${e.losses} losses${e.mcnemar_p !== undefined ? `; McNemar p = ${Number(e.mcnemar_p).toPrecision(3)}` : ""}</p>${interval}` : ""}
    ${r.n ? `<p>Regression set (${r.n} fixed mistakes): champion ${num(r.champion)} → candidate ${num(r.candidate)}; ${r.wins} wins, ${r.losses} losses</p>` : `<p class="muted">Regression set empty.</p>`}
    ${sideBySide(e.win_examples, "Wins (candidate right where the champion was not)")}
    ${sideBySide(e.loss_examples, "Losses")}${sideBySide(r.loss_examples, "Regression-set losses")}</div>`;
  if (actions) {
    $("#approve-cycle").onclick = () => decideCycle(c.cycle_id, "approve");
    $("#reject-cycle").onclick = () => decideCycle(c.cycle_id, "reject");
  }
  if (scroll) $("#cycle-detail").scrollIntoView({ behavior: "smooth" });
}

async function decideCycle(cycleId, action) {
  const reason = action === "reject" ? (prompt("Why reject it?") || "") : "";
  try {
    await api(`/v1/cycles/${encodeURIComponent(cycleId)}/${action}`, { method: "POST", body: JSON.stringify({ reason }) });
  } catch (error) { alert(`${action} failed: ${error.message}`); }
  await loadCycles();
}

// -- adapters ----------------------------------------------------------------------------------
async function loadAdapters() {
  const task = $("#adapter-task").value;
  if (!task) return;
  const q = encodeURIComponent(task);
  const [detail, adapters, quality, drift] = await Promise.all([api(`/v1/tasks/${q}`),
    api(`/v1/adapters?task=${q}`), api(`/v1/tasks/${q}/quality`), api(`/v1/tasks/${q}/drift`)]);
  $("#quality-chart").innerHTML = lineChart([
    { name: "candidate (filled: went live)", points: quality.map((c, i) => ({ x: i, y: c.candidate,
      hollow: !c.went_live, label: `${c.adapter_id}: ${c.verdict}` })) },
    { name: "champion on the same examples", points: quality.map((c, i) => ({ x: i, y: c.champion, label: `cycle ${c.cycle_id}` })) },
  ], { yLabel: `${quality[0]?.metric || "metric"} on the gate's eval set, per cycle`,
    ...(quality[0]?.metric === "nll" ? {} : { yMin: 0, yMax: 1 }), xFormat: (x) => `#${x + 1}` });
  const driftSeries = [];
  for (const [adapter, points] of Object.entries(drift.by_adapter)) {
    driftSeries.push({ name: `${adapter.slice(0, 12)} corrections`, points: points.map((p) => ({ x: t(p.t), y: p.correction_rate, label: `${p.served} served` })) });
    driftSeries.push({ name: `${adapter.slice(0, 12)} negative feedback`, points: points.map((p) => ({ x: t(p.t), y: p.negative_feedback_rate, label: `${p.served} served` })) });
  }
  $("#drift-chart").innerHTML = lineChart(driftSeries, { yLabel: `share of answers per ${drift.bucket}`, yMin: 0, yMax: 1, xFormat: clock });
  $("#history-table tbody").innerHTML = detail.champion_history.slice().reverse().map((h) => `<tr>
    <td>${when(h.since)}</td><td>${when(h.until) || "live"}</td><td><code>${short(h.adapter_id)}</code></td>
    <td>${esc(h.action)}</td><td>${esc(h.actor)}</td><td>${esc(h.reason)}</td></tr>`).join("");
  $("#adapter-table tbody").innerHTML = adapters.map((a) => `<tr><td><code>${short(a.adapter_id)}</code></td>
    <td>${when(a.created_at)}</td><td><code>${short(a.parent_adapter)}</code></td><td><code>${short(a.snapshot_id)}</code></td>
    <td>${a.champion ? "<span class=ok>champion</span>" : ""}</td></tr>`).join("");
  $("#adapter-status").innerHTML = `Champion: <code id="current-champion">${short(detail.champion)}</code>`;
}

async function rollback() {
  const task = $("#adapter-task").value;
  if (!task || !confirm(`Roll back the champion of ${task}?`)) return;
  try {
    await api(`/v1/tasks/${encodeURIComponent(task)}/rollback`, { method: "POST", body: JSON.stringify({ reason: "rolled back from the console" }) });
  } catch (error) { $("#adapter-status").textContent = `Rollback failed: ${error.message}`; return; }
  await loadAdapters();
}

// -- live outcomes: canary and drift -------------------------------------------------------
const BASELINES = { first_window: "its own first window", previous_champion: "the previous champion's last window" };
const pct = (v) => `${Math.round(Number(v) * 100)}%`;
const seconds = (x) => new Date(x).toISOString().slice(11, 19);
// Label at most about eight of the x values, so a long run of windows stays legible.
function sparse(xs, format) {
  const sorted = [...new Set(xs)].sort((a, b) => a - b), step = Math.ceil(sorted.length / 8);
  const shown = new Set(sorted.filter((_, i) => i % step === 0));
  return (x) => (shown.has(x) ? format(x) : "");
}

function roleOf(adapter, canary, champion) {
  if (canary && adapter === canary.adapter_id) return "canary";
  return adapter === champion ? "champion" : "earlier version";
}

function ratesChart(live, champion) {
  const byVersion = new Map();
  for (const w of live.windows.slice(-240)) {
    const key = w.adapter_id ?? null;
    if (!byVersion.has(key)) byVersion.set(key, []);
    byVersion.get(key).push({ x: w.window_start * 1000, y: w.negative_rate,
      label: `${w.negative} of ${w.judged} judged answers negative (${w.answers} answers)` });
  }
  const series = [...byVersion].map(([adapter, points]) => ({
    name: `${adapter ? adapter.slice(0, 12) : "base model"} (${roleOf(adapter, live.canary, champion)})`, points }));
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  return lineChart(series, { yLabel: `negative share of judged answers per ${live.window_s ?? "?"} s window`,
    yMin: 0, yMax: 1, xFormat: sparse(xs, seconds) });
}

function boundaryChart(trail) {
  if (!trail.length) return `<p class="muted">No judged answers since the canary started.</p>`;
  const xs = trail.map((p) => p.t * 1000);
  return lineChart([
    { name: "canary − champion negative rate, with its interval", points: trail.map((p) => ({
      x: p.t * 1000, y: p.difference, lo: p.low, hi: p.high,
      label: `${num(p.low)} .. ${num(p.high)} after ${p.canary_judged} / ${p.champion_judged} judged` })) },
  ], { yLabel: "difference of negative rates (cumulative)", xFormat: sparse(xs, seconds),
    rules: [{ y: 0, label: "decision boundary: interval above, roll back; below, promote" }] });
}

function canaryState(live, champion) {
  const c = live.canary;
  if (!c) {
    const last = live.history[live.history.length - 1];
    const ended = last ? ` The last one, <code>${short(last.adapter_id)}</code>, ended
      <span id="canary-outcome" class="verdict-${esc(last.outcome)}">${esc(last.outcome)}</span> by ${esc(last.actor)}.` : "";
    return `<p id="no-canary">No canary is running; the champion <code>${short(champion)}</code> serves every request.${ended}</p>`;
  }
  const d = live.decision && live.decision.adapter_id === c.adapter_id ? live.decision : null;
  return `<p>Canary <code id="canary-adapter">${short(c.adapter_id)}</code> against the champion
      <code>${short(c.champion_id)}</code> serves <strong id="canary-fraction">${pct(c.policy.fraction)}</strong>
      of the task's requests since ${when(c.started_at)}.</p>
    <p>Judged answers so far: canary <strong id="canary-events">${d ? d.candidate.n : 0}</strong>, champion
      <strong id="champion-events">${d ? d.reference.n : 0}</strong>; a decision needs
      <strong id="canary-min-events">${c.policy.min_events}</strong> on each side. Deadline
      <span id="canary-deadline">${when(c.deadline)}</span>, then the default: ${esc(c.policy.default)}.</p>
    <p>Decision: <strong id="canary-decision" class="verdict-${esc(d?.action)}">${esc(d ? d.action : "none yet")}</strong>
      ${d ? `<span class="muted">${esc(d.reason)}</span>` : ""}</p>`;
}

async function loadLive() {
  const task = $("#live-task").value;
  if (!task) return;
  const q = encodeURIComponent(task);
  const [detail, live] = await Promise.all([api(`/v1/tasks/${q}`), api(`/v1/tasks/${q}/canary`)]);
  $("#canary-state").innerHTML = canaryState(live, detail.champion);
  // Ending a canary changes what every server serves: operators and admins only (the API
  // refuses anyone else too).
  $("#canary-actions").hidden = !live.canary || !["operator", "admin"].includes(state.role);
  $("#live-chart").innerHTML = ratesChart(live, detail.champion);
  $("#boundary-chart").innerHTML = boundaryChart(live.trail);
  $("#canary-history tbody").innerHTML = live.history.slice().reverse().map((h) => `<tr>
    <td>${when(h.started_at)}</td><td>${when(h.ended_at) || "running"}</td><td><code>${short(h.adapter_id)}</code></td>
    <td class="verdict-${esc(h.outcome)}">${esc(h.outcome ?? "")}</td><td>${esc(h.actor ?? "")}</td>
    <td>${esc(h.evidence?.reason ?? "")}</td></tr>`).join("");
}

async function endCanary(outcome) {
  const task = $("#live-task").value;
  const verb = outcome === "promote" ? "Promote" : "Roll back";
  if (!task || !confirm(`${verb} the canary of ${task}? Every inference server follows.`)) return;
  try {
    await api(`/v1/tasks/${encodeURIComponent(task)}/canary/end`, { method: "POST",
      body: JSON.stringify({ outcome, reason: `${verb.toLowerCase()} from the console` }) });
    $("#canary-status").textContent = outcome === "promote"
      ? "Promoted: the canary is the champion now." : "Rolled back: the champion serves every request.";
  } catch (error) {
    $("#canary-status").textContent = `The canary was not ended: ${error.message}`;
  }
  await loadLive();
}

// -- audit -------------------------------------------------------------------------------------
async function loadAudit() {
  const rows = await api("/v1/audit?limit=300");
  $("#audit-table tbody").innerHTML = rows.map((r) => `<tr><td>${when(r.at)}</td><td>${esc(r.actor)}</td>
    <td>${esc(r.action)}</td><td>${esc(r.task)}</td><td><code>${esc(JSON.stringify(r.details).slice(0, 300))}</code></td></tr>`).join("");
}

// -- wiring ------------------------------------------------------------------------------------
$("#login-form").onsubmit = (e) => { e.preventDefault(); login($("#token").value.trim()); };
$("#logout").onclick = () => logout();
$("#rollback").onclick = rollback;
$("#adapter-task").onchange = loadAdapters;
$("#live-task").onchange = loadLive;
$("#canary-promote").onclick = () => endCanary("promote");
$("#canary-rollback").onclick = () => endCanary("rollback");
$("#review-task").onchange = () => { state.item = null; nextItem(); };
for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => show(b.dataset.view);

document.addEventListener("keydown", (e) => {
  if (!state.token || !state.role) return;
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (state.view === "review" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); correct(); return; }
  if (typing) { if (e.key === "Escape") document.activeElement.blur(); return; }
  const tabs = [...document.querySelectorAll("#tabs button")].filter((b) => !b.hidden);
  const index = Number(e.key) - 1;
  if (index >= 0 && index < 6) {
    const button = document.querySelector(`#tabs button:nth-child(${index + 1})`);
    if (button && !button.hidden) show(button.dataset.view);
    return;
  }
  if (state.view !== "review" || !tabs.length) return;
  if (e.key === "a") { e.preventDefault(); approve(); }
  else if (e.key === "c") { e.preventDefault(); $("#correction")?.focus(); $("#correction")?.select(); }
  else if (e.key === "s") { e.preventDefault(); skip(); }
  else if (e.key === "n") { e.preventDefault(); nextItem(); }
});

if (state.token) login(state.token);
