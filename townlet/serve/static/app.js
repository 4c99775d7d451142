// Townlet viewer: speaks the server's protocol over a WebSocket on the page's own host and port
// (override with ?ws=ws://host:port/ws; ?token= is passed through). No build step.
"use strict";

const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`
  + (params.get("token") ? `?token=${encodeURIComponent(params.get("token"))}` : "");
const $ = (id) => document.getElementById(id);
const canvas = $("grid"), ctx = canvas.getContext("2d");
const state = { socket: null, total: 0, last: null, trails: {}, names: { meters: [], actions: [] }, events: [],
  playing: false, speeds: [0.5, 1, 2, 4, 10], focus: params.get("agent"), window: 9,
  pending: params.has("episode") ? { episode: parseInt(params.get("episode"), 10), run: params.get("run"),
    step: params.has("step") ? parseInt(params.get("step"), 10) : null } : null };
const TRAIL = 8, EVENT_LOG = 40;

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

function showError(text) {
  const box = $("error");
  box.textContent = text; box.style.display = "block";
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.style.display = "none"; }, 5000);
}

function connect() {
  const socket = new WebSocket(wsUrl);
  state.socket = socket;
  socket.onopen = () => { $("status").textContent = "connected"; };
  socket.onclose = () => { $("status").textContent = "disconnected — retrying"; setTimeout(connect, 1500); };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
}

function handle(message) {
  switch (message.type) {
    case "connected":
      state.names = { meters: message.meter_names, actions: message.action_names };
      $("live").disabled = !message.live_available;
      fillRuns(message.runs || []);
      if (message.replay_available) listRecordings();
      if (state.pending) {  // a deep link: open exactly that episode (and step, below)
        const p = state.pending;
        send({ type: "load_replay", episode_id: p.episode, ...(p.run ? { run: p.run } : {}) });
      }
      break;
    case "recordings_list": showRecordings(message.recordings); break;
    case "replay_loaded":
      state.total = message.total_steps; state.trails = {}; state.events = [];
      $("mode").textContent = "replay";
      $("timeline").max = Math.max(0, message.total_steps - 1); $("timeline").disabled = false;
      $("info").textContent = `Episode ${message.episode_id} (${message.run}) · stage ${message.metadata.curriculum_stage}`
        + ` · ${message.metadata.survival_steps} steps · total reward ${message.metadata.total_reward.toFixed(3)}`;
      showSource(message.source || {});
      state.episode = message.episode_id; state.run = message.run; state.playing = false;
      state.window = message.observation_window || 9;
      if (state.pending && state.pending.step !== null && state.pending.episode === message.episode_id) {
        send({ type: "replay_control", action: "seek", seek_step: state.pending.step });
      }
      state.pending = null; state.series = null; window.townletSeriesReady = false;
      send({ type: "episode_series" });
      break;
    case "episode_start":
      state.trails = {}; state.events = []; $("mode").textContent = "live";
      $("info").textContent = `Live: episode ${message.episode_id} · ${message.scenario}`;
      $("timeline").disabled = true;
      break;
    case "state_update": absorb(message); break;
    case "episode_series":
      state.series = message; drawMarkers(); if (state.last) drawCharts(state.last.step);
      window.townletSeriesReady = true; break;
    case "replay_finished": state.playing = false; $("info").textContent += " · finished"; break;
    case "episode_end": $("info").textContent += ` · ended after ${message.steps} steps`; break;
    case "error": showError(message.message); break;
  }
}

// The run a recording came from: its MLflow run (a link when the store is a server the page can
// open), its run directory and config hash.
function showSource(source) {
  const box = $("source"); box.replaceChildren();
  if (!source.mlflow_run_id && !source.run_dir) return;
  box.append("from ");
  if (source.mlflow_run_id) {
    const uri = source.tracking_uri || "";
    const label = `MLflow run ${source.mlflow_run_id.slice(0, 8)}`;
    if (/^https?:\/\//.test(uri)) {
      const link = document.createElement("a");
      link.href = `${uri.replace(/\/$/, "")}/#/runs/${source.mlflow_run_id}?workflowType=machine_learning`;
      link.target = "_blank"; link.textContent = label; box.append(link);
    } else {
      const span = document.createElement("span");
      span.textContent = label; span.title = `mlflow ui --backend-store-uri ${uri}`; box.append(span);
    }
    box.append(" · ");
  }
  if (source.run_dir) box.append(`run ${source.run_dir}`);
  if (source.config_hash) box.append(` · config ${source.config_hash}`);
}

function fillRuns(runs) {
  const select = document.querySelector("#filters select[name=run]");
  for (const run of runs) {
    const option = document.createElement("option");
    option.value = run; option.textContent = run; select.appendChild(option);
  }
}

function listRecordings() {
  const form = new FormData($("filters")), filters = {};
  for (const [key, raw] of form.entries()) {
    if (raw === "") continue;
    filters[key] = ["stage", "limit"].includes(key) ? parseInt(raw, 10)
      : ["min_reward", "max_reward"].includes(key) ? parseFloat(raw) : raw;
  }
  send({ type: "list_recordings", filters });
}

function showRecordings(rows) {
  const body = document.querySelector("#recordings tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.episode = r.episode_id; tr.dataset.run = r.run;
    for (const value of [r.episode_id, r.survival_steps, r.total_reward.toFixed(3), r.curriculum_stage, r.recording_reason, r.run]) {
      const td = document.createElement("td"); td.textContent = value; tr.appendChild(td);
    }
    tr.onclick = () => {
      body.querySelectorAll("tr").forEach((row) => row.classList.remove("selected"));
      tr.classList.add("selected");
      send({ type: "load_replay", episode_id: r.episode_id, run: r.run });
    };
    body.appendChild(tr);
  }
}

// The canvas takes the grid's shape: as wide as the panel allows, no taller than the window.
function fitCanvas(grid) {
  const box = canvas.parentElement.getBoundingClientRect();
  const cell = Math.max(8, Math.floor(Math.min((box.width - 24) / grid.width, (window.innerHeight * 0.48) / grid.height)));
  if (canvas.width !== cell * grid.width || canvas.height !== cell * grid.height) {
    canvas.width = cell * grid.width; canvas.height = cell * grid.height;
  }
  return cell;
}

// A label cut to a width (with an ellipsis), so it stays inside its tile.
function fit(text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(cut + "…").width > width) cut = cut.slice(0, -1);
  return cut + "…";
}

// How dark it is at a time of day (0 noon-ish, 0.5 deep night), for the night shading.
function darkness(tod, tpd) {
  const hour = (24 * tod) / tpd;
  if (hour >= 7 && hour <= 18) return 0;
  if (hour > 18 && hour < 21) return 0.5 * (hour - 18) / 3;
  if (hour > 5 && hour < 7) return 0.5 * (7 - hour) / 2;
  return 0.5;
}

function render(update) {
  const previous = state.last ? state.last.step : -1;
  if (update.step < previous || update.step - previous > 20) state.trails = {};  // a seek: no jump lines
  state.last = update; window.townletLast = update;  // the last state drawn, for tests and the console
  window.townletDrawnAt = performance.now();
  const grid = update.grid, cell = fitCanvas(grid);
  const css = getComputedStyle(document.documentElement), v = (name) => css.getPropertyValue(name).trim();
  ctx.fillStyle = v("--bg"); ctx.fillRect(0, 0, canvas.width, canvas.height);
  const walls = new Set(grid.walls.map(([x, y]) => `${x},${y}`));
  for (let y = 0; y < grid.height; y++) for (let x = 0; x < grid.width; x++) {
    ctx.fillStyle = walls.has(`${x},${y}`) ? v("--wall") : v("--floor");
    ctx.fillRect(x * cell + 1, y * cell + 1, cell - 2, cell - 2);
  }
  ctx.font = `${Math.min(15, Math.max(9, cell / 6))}px system-ui`; ctx.textBaseline = "top";
  for (const a of grid.affordances) {
    ctx.fillStyle = a.closed ? v("--closed") : v("--aff"); ctx.fillRect(a.x * cell + 4, a.y * cell + 4, cell - 8, cell - 8);
    if (a.busy || a.queue.length) {
      ctx.strokeStyle = a.queue.length ? v("--queue") : v("--busy"); ctx.lineWidth = 3;
      ctx.strokeRect(a.x * cell + 3, a.y * cell + 3, cell - 6, cell - 6);
    }
    ctx.fillStyle = v("--ink"); ctx.fillText(fit(a.name + (a.queue.length ? ` (${a.queue.length})` : ""), cell - 8), a.x * cell + 5, a.y * cell + 6);
  }
  // night falls on the town, not on the agents drawn over it
  if (update.time_of_day !== null && update.time_of_day !== undefined) {
    const dark = darkness(update.time_of_day, update.ticks_per_day || 240);
    if (dark > 0) { ctx.fillStyle = `rgba(8, 12, 40, ${dark})`; ctx.fillRect(0, 0, canvas.width, canvas.height); }
  }
  const sharing = {};  // agents per tile: one label per tile, so labels never overlap
  for (const agent of grid.agents) sharing[`${agent.x},${agent.y}`] = (sharing[`${agent.x},${agent.y}`] || 0) + 1;
  const labelled = new Set();
  for (const agent of grid.agents) {
    const active = agent.active !== false;
    const trail = (state.trails[agent.id] = state.trails[agent.id] || []);
    trail.push([agent.x, agent.y]); if (trail.length > TRAIL) trail.shift();
    ctx.strokeStyle = agent.color; ctx.globalAlpha = active ? 0.45 : 0.15; ctx.lineWidth = Math.max(2, cell / 10); ctx.beginPath();
    trail.forEach(([x, y], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x * cell + cell / 2, y * cell + cell / 2));
    ctx.stroke(); ctx.globalAlpha = active ? 1 : 0.35;  // left out or fainted: greyed
    ctx.fillStyle = active ? agent.color : v("--muted"); ctx.beginPath();
    ctx.arc(agent.x * cell + cell / 2, agent.y * cell + cell / 2, cell * 0.3, 0, 2 * Math.PI); ctx.fill();
    ctx.globalAlpha = 1;
    const tile = `${agent.x},${agent.y}`;
    if (!active || labelled.has(tile)) continue;
    labelled.add(tile);
    const text = sharing[tile] > 1 ? `${sharing[tile]} agents` : agent.last_action.name;
    ctx.fillStyle = v("--ink"); ctx.fillText(fit(text, cell - 8), agent.x * cell + 5, agent.y * cell + cell * 0.78);
  }
  drawSocial(update, cell, v);
  drawFocus(update, cell, v);
  followUrl(update);
  if (update.mode === "replay") drawCharts(update.step); else clearTimelines();
  const total = update.replay_metadata ? update.replay_metadata.total_steps : update.step + 1;
  $("cursor").textContent = `${update.step + 1} / ${total} · reward ${update.cumulative_reward.toFixed(3)}`;
  if (update.replay_metadata) $("timeline").value = update.step;
  const tpd = update.ticks_per_day || 240;
  if (update.time_of_day === null || update.time_of_day === undefined) { $("tod").style.width = "0"; $("tod-text").textContent = "not recorded"; }
  else {
    const minutes = Math.floor(update.time_of_day * 1440 / tpd);
    $("tod").style.width = `${100 * update.time_of_day / tpd}%`;
    $("tod-text").textContent = `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
  }
  $("outages").textContent = (update.outages || []).length ? `outage: ${update.outages.join(", ")} (its affordances are closed)` : "";
  showEvents(update);
  // the DOM-heavy panels at most 10 times a second while playing; every frame when still
  const now = performance.now();
  if (!state.playing || now - (state.panelsAt || 0) > 100) { renderAgents(update); state.panelsAt = now; }
}

// Chats are lines between the two agents (green: success, red: failure); late help and
// shift takeovers a ring around the agent that got or gave the cover.
function drawSocial(update, cell, v) {
  const where = Object.fromEntries(update.grid.agents.map((a) => [a.id, a]));
  const centre = (a) => [a.x * cell + cell / 2, a.y * cell + cell / 2];
  for (const e of update.events || []) {
    const a = where[e.agent];
    if (!a) continue;
    if (e.kind === "chat" && where[e.with]) {
      const [x0, y0] = centre(a), [x1, y1] = centre(where[e.with]);
      ctx.strokeStyle = e.success ? v("--chat-ok") : v("--chat-bad"); ctx.lineWidth = Math.max(3, cell / 8);
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    } else if (e.kind === "late_help" || e.kind === "takeover") {
      const [x, y] = centre(a);
      ctx.strokeStyle = v("--help"); ctx.lineWidth = Math.max(3, cell / 10);
      ctx.beginPath(); ctx.arc(x, y, cell * 0.42, 0, 2 * Math.PI); ctx.stroke();
    }
  }
}

// The focused agent: a ring, and the square its observation window covers.
function drawFocus(update, cell, v) {
  const agent = update.grid.agents.find((a) => a.id === state.focus);
  if (!agent) return;
  const half = Math.floor(state.window / 2);
  ctx.strokeStyle = v("--focus"); ctx.lineWidth = 2; ctx.setLineDash([6, 4]);
  ctx.strokeRect((agent.x - half) * cell, (agent.y - half) * cell, state.window * cell, state.window * cell);
  ctx.setLineDash([]); ctx.lineWidth = Math.max(3, cell / 10);
  ctx.beginPath(); ctx.arc(agent.x * cell + cell / 2, agent.y * cell + cell / 2, cell * 0.45, 0, 2 * Math.PI); ctx.stroke();
}

// Timelines of one agent (the focused one, else the first): its meters, cumulative reward and
// value estimate over the whole episode, with the cursor at the current step; a click seeks.
// Hand-drawn on a canvas (about 40 lines) rather than a chart library: the page has no build
// step and ships inside the wheel, and these are plain polylines.
const MARKER_COLOURS = { chat: "--chat-ok", late_help: "--help", takeover: "--help", late: "--warning",
  absent: "--critical", faint: "--critical", on_time: "--bar", completed: "--muted" };

function sized(chart) {
  const width = Math.max(100, Math.floor(chart.getBoundingClientRect().width));
  if (chart.width !== width) chart.width = width;
  return chart.getContext("2d");
}

function clearTimelines() {
  for (const id of ["charts", "markers"]) { const c = $(id); c.getContext("2d").clearRect(0, 0, c.width, c.height); }
}

function drawCharts(step) {
  const series = state.series, chart = $("charts");
  if (!series) return;
  const g = sized(chart), w = chart.width, h = chart.height, n = Math.max(1, series.steps - 1);
  const css = getComputedStyle(document.documentElement), v = (name) => css.getPropertyValue(name).trim();
  const agent = series.agents[state.focus] ? state.focus : Object.keys(series.agents)[0];
  const data = series.agents[agent];
  g.clearRect(0, 0, w, h);
  const line = (values, colour, lo, hi) => {
    const span = hi - lo || 1;
    g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
    values.forEach((y, t) => (t ? g.lineTo : g.moveTo).call(g, (t / n) * w, h - 4 - ((y - lo) / span) * (h - 8)));
    g.stroke();
  };
  const palette = ["#78c8a0", "#7ab8ff", "#e9c46a", "#c792ea", "#f4a261", "#9ad1d4"];
  series.meter_names.forEach((m, i) => line(data.meters[m], palette[i % palette.length], 0, 1));
  let total = 0; const cumulative = data.reward.map((r) => (total += r));
  line(cumulative, v("--ink"), Math.min(0, ...cumulative), Math.max(0, ...cumulative));
  if (data.value) line(data.value, v("--queue"), Math.min(...data.value), Math.max(...data.value));
  g.font = "11px system-ui"; g.fillStyle = v("--muted");
  let x = 4; const label = (text, colour) => { g.fillStyle = colour; g.fillText(text, x, 12); x += g.measureText(text).width + 10; };
  label(`${agent}:`, v("--muted"));
  series.meter_names.forEach((m, i) => label(m, palette[i % palette.length]));
  label("cumulative reward", v("--ink"));
  if (data.value) label("value", v("--queue"));
  g.strokeStyle = v("--focus"); g.lineWidth = 1; g.beginPath();
  g.moveTo((step / n) * w, 0); g.lineTo((step / n) * w, h); g.stroke();
}

function drawMarkers() {
  const series = state.series, strip = $("markers");
  if (!series) return;
  const g = sized(strip), w = strip.width, n = Math.max(1, series.steps - 1);
  const css = getComputedStyle(document.documentElement);
  g.clearRect(0, 0, w, strip.height);
  for (const m of series.markers) {
    if (m.kind === "completed") continue;
    g.fillStyle = css.getPropertyValue(m.kind === "chat" && !m.success ? "--chat-bad" : MARKER_COLOURS[m.kind] || "--muted").trim();
    g.fillRect(Math.round((m.step / n) * (w - 2)), 0, 2, strip.height);
  }
}

$("charts").onclick = (event) => {
  if (!state.series) return;
  const box = $("charts").getBoundingClientRect();
  const step = Math.round(((event.clientX - box.left) / box.width) * (state.series.steps - 1));
  send({ type: "replay_control", action: "seek", seek_step: Math.max(0, Math.min(state.series.steps - 1, step)) });
};

// The address follows what is on screen, so a pasted link reopens it.
function followUrl(update) {
  if (update.mode !== "replay" || state.episode === undefined) return;
  const next = new URLSearchParams(location.search);
  next.set("episode", state.episode); next.set("step", update.step);
  if (state.run) next.set("run", state.run); else next.delete("run");
  if (state.focus) next.set("agent", state.focus); else next.delete("agent");
  const address = `${location.pathname}?${next}`;
  if (address !== location.pathname + location.search) history.replaceState(null, "", address);
}

function describe(e) {
  switch (e.kind) {
    case "chat": return `${e.agent} chatted with ${e.with}: ${e.success ? "success" : "failure"}`
      + (e.quality !== undefined ? ` (quality ${e.quality.toFixed(2)})` : "");
    case "late_help": return `${e.agent} was late; a coworker covered`;
    case "takeover": return `${e.agent} took over ${e.shifts} absent colleague's shift`;
    case "completed": return `${e.agent} finished ${e.affordance}`;
    case "on_time": return `${e.agent} arrived at work on time`;
    case "late": return `${e.agent} arrived late`;
    case "absent": return `${e.agent} missed the shift`;
    case "faint": return `${e.agent} fainted`;
    default: return `${e.agent}: ${e.kind}`;
  }
}

// Every update's events are kept (cheap); drawing happens once per animation frame with the
// newest update, so a fast replay (speed 10 = 50 updates/s) never queues up work.
function absorb(update) {
  if (update.events !== undefined) {
    state.events = state.events.filter((item) => item.step < update.step);  // a seek back forgets the future
    for (const e of update.events) state.events.push({ step: update.step, e });
    state.events = state.events.slice(-EVENT_LOG);
  }
  state.next = update;
  if (!state.frameRequested) {
    state.frameRequested = true;
    requestAnimationFrame(() => { state.frameRequested = false; render(state.next); });
  }
}

function showEvents(update) {
  const list = $("events");
  if (update.events === undefined) { list.replaceChildren(); list.dataset.state = "not recorded"; return; }
  list.dataset.state = "recorded";
  const shownUpTo = state.events.length ? state.events[state.events.length - 1].step : -1;
  if (list.dataset.upTo === String(shownUpTo) && list.childElementCount === Math.min(state.events.length, EVENT_LOG)) return;
  list.dataset.upTo = String(shownUpTo);
  list.replaceChildren(...state.events.slice().reverse().map(({ step, e }) => {
    const li = document.createElement("li");
    li.className = e.kind === "chat" ? (e.success ? "chat-ok" : "chat-bad") : (["late_help", "takeover"].includes(e.kind) ? "help" : "");
    li.dataset.kind = e.kind; li.textContent = `${step + 1}: ${describe(e)}`; return li;
  }));
}

// Meter colours: critical below 0.2, warning below 0.4.
function meterColour(value) {
  const css = getComputedStyle(document.documentElement);
  return css.getPropertyValue(value < 0.2 ? "--critical" : value < 0.4 ? "--warning" : "--bar").trim();
}

function bar(label, value, shown, chosen, meter = false) {
  const row = document.createElement("div"); row.className = "row" + (chosen ? " chosen" : "");
  const name = document.createElement("span"); name.textContent = label;
  const track = document.createElement("div"); track.className = "track";
  const fill = document.createElement("div"); fill.className = "fill"; fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
  if (meter) fill.style.background = meterColour(value);
  const text = document.createElement("span"); text.textContent = shown;
  track.appendChild(fill); row.append(name, track, text); return row;
}

function renderAgents(update) {
  const list = $("agent-list"); list.replaceChildren();
  const policy = update.action_probabilities || update.q_values, isQ = !update.action_probabilities && !!update.q_values;
  for (const agent of update.grid.agents) {
    const box = document.createElement("div"); box.className = "agent" + (agent.id === state.focus ? " focused" : "");
    box.dataset.agent = agent.id;
    box.onclick = () => { state.focus = state.focus === agent.id ? null : agent.id; if (state.last) render(state.last); };
    const title = document.createElement("h3");
    const dot = document.createElement("span"); dot.className = "dot"; dot.style.background = agent.color;
    const progress = (update.interaction_progress || {})[agent.id] || 0;
    const reward = (update.agent_rewards || {})[agent.id], value = (update.value || {})[agent.id];
    title.append(dot, `${agent.id} · ${agent.last_action.name} · progress ${(100 * progress).toFixed(0)}%`
      + (reward !== undefined ? ` · reward ${reward >= 0 ? "+" : ""}${reward.toFixed(3)}` : "")
      + (value !== undefined ? ` · value ${value.toFixed(2)}` : ""));
    box.appendChild(title);
    const meters = update.agent_meters[agent.id].meters;
    for (const [name, value] of Object.entries(meters)) box.appendChild(bar(name, value, value.toFixed(2), false, true));
    if (policy && policy[agent.id]) {
      const values = Object.entries(policy[agent.id]);
      const lo = Math.min(...values.map(([, x]) => x)), hi = Math.max(...values.map(([, x]) => x));
      const caption = document.createElement("h3"); caption.textContent = isQ ? "Q-values" : "action probabilities"; box.appendChild(caption);
      for (const [name, value] of values) {
        const scaled = isQ ? (hi > lo ? (value - lo) / (hi - lo) : 0) : value;
        box.appendChild(bar(name, scaled, value.toFixed(2), name === agent.last_action.name));
      }
    }
    list.appendChild(box);
  }
}

$("filters").onsubmit = (event) => { event.preventDefault(); listRecordings(); };
$("play").onclick = () => { state.playing = true; send({ command: "play" }); };
$("pause").onclick = () => { state.playing = false; send({ command: "pause" }); };
// Keyboard: space plays or pauses, arrows step a tick either way, + and - change the speed.
document.addEventListener("keydown", (event) => {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) && event.target.id !== "timeline") return;
  const step = state.last ? state.last.step : 0;
  if (event.key === " ") { (state.playing ? $("pause") : $("play")).click(); }
  else if (event.key === "ArrowRight") send({ type: "replay_control", action: "seek", seek_step: Math.min(step + 1, Math.max(0, state.total - 1)) });
  else if (event.key === "ArrowLeft") send({ type: "replay_control", action: "seek", seek_step: Math.max(0, step - 1) });
  else if (event.key === "+" || event.key === "-") {
    const speeds = state.speeds, at = speeds.indexOf(parseFloat($("speed").value));
    const next = speeds[Math.max(0, Math.min(speeds.length - 1, at + (event.key === "+" ? 1 : -1)))];
    $("speed").value = String(next); send({ command: "set_speed", speed: next });
  } else return;
  event.preventDefault();
});
$("step").onclick = () => send({ command: "step" });
$("reset").onclick = () => send({ command: "reset" });
$("speed").onchange = () => send({ command: "set_speed", speed: parseFloat($("speed").value) });
$("timeline").oninput = () => send({ type: "replay_control", action: "seek", seek_step: parseInt($("timeline").value, 10) });
$("live").onclick = () => send({ type: "load_checkpoint", checkpoint: "latest" });
connect();
