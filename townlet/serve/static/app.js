// Townlet viewer: speaks the server's protocol over a WebSocket on the page's own host and port
// (override with ?ws=ws://host:port/ws; ?token= is passed through). No build step.
"use strict";

const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`
  + (params.get("token") ? `?token=${encodeURIComponent(params.get("token"))}` : "");
const $ = (id) => document.getElementById(id);
const canvas = $("grid"), ctx = canvas.getContext("2d");
// The town is drawn into a view: the main one, and in compare mode a second one (episode B).
const mainView = { canvas, ctx, trails: {} };
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
      $("live").disabled = $("live-b").disabled = !message.live_available;
      fillRuns(message.runs || []);
      if (message.replay_available) listRecordings();
      if (state.pending) {  // a deep link: open exactly that episode (and step, below)
        const p = state.pending;
        send({ type: "load_replay", episode_id: p.episode, ...(p.run ? { run: p.run } : {}) });
      }
      break;
    case "recordings_list": showRecordings(message.recordings); break;
    case "replay_loaded":
      state.total = message.total_steps; mainView.trails = {}; state.events = [];
      mainView.avoidThreshold = message.avoid_threshold;
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
      mainView.trails = {}; state.events = []; $("mode").textContent = "live";
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
      const td = document.createElement("td"); td.textContent = value; td.title = String(value); tr.appendChild(td);
    }
    const vs = document.createElement("td"), button = document.createElement("button");
    button.className = "vs"; button.textContent = "B"; button.title = "open beside the episode on screen";
    button.onclick = (event) => { event.stopPropagation(); openCompare(r.episode_id, r.run); };
    vs.appendChild(button); tr.appendChild(vs);
    tr.onclick = () => {
      body.querySelectorAll("tr").forEach((row) => row.classList.remove("selected"));
      tr.classList.add("selected");
      send({ type: "load_replay", episode_id: r.episode_id, run: r.run });
    };
    body.appendChild(tr);
  }
}

// The canvas takes the grid's shape: as wide as its pane allows, no taller than the window.
function fitCanvas(view, grid) {
  const box = view.canvas.parentElement.getBoundingClientRect();
  const cell = Math.max(8, Math.floor(Math.min((box.width - 8) / grid.width, (window.innerHeight * 0.44) / grid.height)));
  if (view.canvas.width !== cell * grid.width || view.canvas.height !== cell * grid.height) {
    view.canvas.width = cell * grid.width; view.canvas.height = cell * grid.height;
  }
  view.cell = cell; view.grid = grid;
  return cell;
}

// A label cut to a width (with an ellipsis), so it stays inside its tile.
function fit(g, text, width) {
  if (g.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && g.measureText(cut + "…").width > width) cut = cut.slice(0, -1);
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
  state.last = update; window.townletLast = update;  // the last state drawn, for tests and the console
  window.townletDrawnAt = performance.now();
  drawTown(mainView, update);
  drawFocus(mainView, update);
  followUrl(update);
  if (update.mode === "replay") drawCharts(update.step); else clearTimelines();
  const total = update.replay_metadata ? update.replay_metadata.total_steps : update.step + 1;
  $("cursor").textContent = `${update.step + 1} / ${total} · reward ${update.cumulative_reward.toFixed(3)}`;
  if (update.replay_metadata) $("timeline").value = update.step;
  const tpd = update.ticks_per_day || 240, timed = update.time_of_day !== null && update.time_of_day !== undefined;
  $("tod-row").hidden = !timed;  // a recording without a clock has no time of day to show
  if (timed) {
    const minutes = Math.floor(update.time_of_day * 1440 / tpd);
    $("tod").style.width = `${100 * update.time_of_day / tpd}%`;
    const day = update.weekday ? `${WEEKDAY_TITLES[update.weekday] || update.weekday} ` : "";  // a multi-day town
    $("tod-text").textContent = `${day}${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
  }
  $("outages").textContent = (update.outages || []).length ? `outage: ${update.outages.join(", ")} (its affordances are closed)` : "";
  showEvents(update);
  followCompare(update); compareTable();
  // the DOM-heavy panels at most 10 times a second while playing; every frame when still
  const now = performance.now();
  if (!state.playing || now - (state.panelsAt || 0) > 100) { renderAgents(update); state.panelsAt = now; }
}

// One frame of the town into a view: tiles, affordances (queues, outages), night, agents with
// trails and one label per tile, rivalry lines, chats and help.
function drawTown(view, update) {
  const previous = view.step === undefined ? -1 : view.step;
  if (update.step < previous || update.step - previous > 20) view.trails = {};  // a seek: no jump lines
  view.step = update.step;
  const g = view.ctx, grid = update.grid, cell = fitCanvas(view, grid);
  const css = getComputedStyle(document.documentElement), v = (name) => css.getPropertyValue(name).trim();
  g.fillStyle = v("--bg"); g.fillRect(0, 0, view.canvas.width, view.canvas.height);
  const walls = new Set(grid.walls.map(([x, y]) => `${x},${y}`));
  for (let y = 0; y < grid.height; y++) for (let x = 0; x < grid.width; x++) {
    g.fillStyle = walls.has(`${x},${y}`) ? v("--wall") : v("--floor");
    g.fillRect(x * cell + 1, y * cell + 1, cell - 2, cell - 2);
  }
  g.font = `${Math.min(15, Math.max(9, cell / 6))}px system-ui`; g.textBaseline = "top";
  for (const a of grid.affordances) {
    g.fillStyle = a.closed ? v("--closed") : v("--aff"); g.fillRect(a.x * cell + 4, a.y * cell + 4, cell - 8, cell - 8);
    if (a.busy || a.queue.length) {
      g.strokeStyle = a.queue.length ? v("--queue") : v("--busy"); g.lineWidth = 3;
      g.strokeRect(a.x * cell + 3, a.y * cell + 3, cell - 6, cell - 6);
    }
    g.fillStyle = v("--ink"); g.fillText(fit(g, a.name + (a.queue.length ? ` (${a.queue.length})` : ""), cell - 8), a.x * cell + 5, a.y * cell + 6);
  }
  // night falls on the town, not on the agents drawn over it
  if (update.time_of_day !== null && update.time_of_day !== undefined) {
    const dark = darkness(update.time_of_day, update.ticks_per_day || 240);
    if (dark > 0) { g.fillStyle = `rgba(8, 12, 40, ${dark})`; g.fillRect(0, 0, view.canvas.width, view.canvas.height); }
  }
  drawRivals(view, update, v);
  const sharing = {};  // agents per tile: one label per tile, so labels never overlap
  for (const agent of grid.agents) sharing[`${agent.x},${agent.y}`] = (sharing[`${agent.x},${agent.y}`] || 0) + 1;
  const labelled = new Set();
  for (const agent of grid.agents) {
    const active = agent.active !== false;
    const trail = (view.trails[agent.id] = view.trails[agent.id] || []);
    trail.push([agent.x, agent.y]); if (trail.length > TRAIL) trail.shift();
    g.strokeStyle = agent.color; g.globalAlpha = active ? 0.45 : 0.15; g.lineWidth = Math.max(2, cell / 10); g.beginPath();
    trail.forEach(([x, y], i) => (i ? g.lineTo : g.moveTo).call(g, x * cell + cell / 2, y * cell + cell / 2));
    g.stroke(); g.globalAlpha = active ? 1 : 0.35;  // left out or fainted: greyed
    g.fillStyle = active ? agent.color : v("--muted"); g.beginPath();
    g.arc(agent.x * cell + cell / 2, agent.y * cell + cell / 2, cell * 0.3, 0, 2 * Math.PI); g.fill();
    g.globalAlpha = 1;
    const tile = `${agent.x},${agent.y}`;
    if (!active || labelled.has(tile)) continue;
    labelled.add(tile);
    const text = sharing[tile] > 1 ? `${sharing[tile]} agents` : agent.last_action.name;
    g.fillStyle = v("--ink"); g.fillText(fit(g, text, cell - 8), agent.x * cell + 5, agent.y * cell + cell * 0.78);
  }
  drawSocial(view, update, v);
}

// Rivalry at or above the avoid threshold (agents steer around each other): a dashed line
// between the two, drawn under the agents.
function drawRivals(view, update, v) {
  const threshold = view.avoidThreshold;
  if (!update.relations || threshold === undefined || threshold === null) return;
  const g = view.ctx, cell = view.cell, where = Object.fromEntries(update.grid.agents.map((a) => [a.id, a]));
  g.strokeStyle = v("--rival"); g.lineWidth = Math.max(2, cell / 14); g.setLineDash([cell / 5, cell / 7]);
  for (const [id, others] of Object.entries(update.relations)) for (const [other, , rivalry] of others) {
    if (rivalry < threshold || id > other || !where[id] || !where[other]) continue;
    g.beginPath(); g.moveTo(where[id].x * cell + cell / 2, where[id].y * cell + cell / 2);
    g.lineTo(where[other].x * cell + cell / 2, where[other].y * cell + cell / 2); g.stroke();
  }
  g.setLineDash([]);
}

// Chats are lines between the two agents (green: success, red: failure); late help and
// shift takeovers a ring around the agent that got or gave the cover.
function drawSocial(view, update, v) {
  const g = view.ctx, cell = view.cell, where = Object.fromEntries(update.grid.agents.map((a) => [a.id, a]));
  const centre = (a) => [a.x * cell + cell / 2, a.y * cell + cell / 2];
  for (const e of update.events || []) {
    const a = where[e.agent];
    if (!a) continue;
    if (e.kind === "chat" && where[e.with]) {
      const [x0, y0] = centre(a), [x1, y1] = centre(where[e.with]);
      g.strokeStyle = e.success ? v("--chat-ok") : v("--chat-bad"); g.lineWidth = Math.max(3, cell / 8);
      g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke();
    } else if (e.kind === "late_help" || e.kind === "takeover") {
      const [x, y] = centre(a);
      g.strokeStyle = v("--help"); g.lineWidth = Math.max(3, cell / 10);
      g.beginPath(); g.arc(x, y, cell * 0.42, 0, 2 * Math.PI); g.stroke();
    }
  }
}

// The focused agent: a ring, and the square its observation window covers.
function drawFocus(view, update) {
  const agent = update.grid.agents.find((a) => a.id === state.focus);
  if (!agent) return;
  const g = view.ctx, cell = view.cell, half = Math.floor(state.window / 2);
  g.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--focus").trim();
  g.lineWidth = 2; g.setLineDash([6, 4]);
  g.strokeRect((agent.x - half) * cell, (agent.y - half) * cell, state.window * cell, state.window * cell);
  g.setLineDash([]); g.lineWidth = Math.max(3, cell / 10);
  g.beginPath(); g.arc(agent.x * cell + cell / 2, agent.y * cell + cell / 2, cell * 0.45, 0, 2 * Math.PI); g.stroke();
}

// Timelines of one agent (the focused one, else the first): its meters, cumulative reward and
// value estimate over the whole episode, with the cursor at the current step; a click seeks.
// Hand-drawn on a canvas (about 40 lines) rather than a chart library: the page has no build
// step and ships inside the wheel, and these are plain polylines.
const MARKER_COLOURS = { chat: "--chat-ok", late_help: "--help", takeover: "--help", late: "--warning",
  absent: "--critical", faint: "--critical", on_time: "--bar", completed: "--muted", queue_join: "--queue",
  rent_paid: "--bar", rent_missed: "--critical" };
const WEEKDAY_TITLES = { mon: "Monday", tue: "Tuesday", wed: "Wednesday", thu: "Thursday", fri: "Friday", sat: "Saturday", sun: "Sunday" };

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
  // a long episode's lines come sampled every `stride` steps (rewards summed over each stride)
  const stride = series.stride || 1;
  const line = (values, colour, lo, hi, every = stride) => {
    const span = hi - lo || 1;
    g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
    values.forEach((y, i) => (i ? g.lineTo : g.moveTo).call(g, ((i * every) / n) * w, h - 4 - ((y - lo) / span) * (h - 8)));
    g.stroke();
  };
  const palette = ["#78c8a0", "#7ab8ff", "#e9c46a", "#c792ea", "#f4a261", "#9ad1d4"];
  series.meter_names.forEach((m, i) => line(data.meters[m], palette[i % palette.length], 0, 1));
  // step reward: thin bars up (gain) or down (loss) from a midline in the chart's lowest fifth
  const top = Math.max(...data.reward.map(Math.abs)) || 1, mid = h - 0.1 * h;
  g.fillStyle = v("--muted");
  data.reward.forEach((r, i) => { const bar = (r / top) * 0.09 * h; g.fillRect(((i * stride) / n) * w, bar > 0 ? mid - bar : mid, Math.max(1, (w * stride) / (n + 1) - 0.5), Math.abs(bar) || 0.5); });
  let total = 0; const cumulative = data.reward.map((r) => (total += r));
  line(cumulative, v("--ink"), Math.min(0, ...cumulative), Math.max(0, ...cumulative));
  if (data.value) line(data.value, v("--queue"), Math.min(...data.value), Math.max(...data.value));
  const other = compare.series && compare.series.agents[agent];
  if (other) {  // episode B's cumulative reward on A's scale and time axis, dashed
    let sum = 0; const theirs = other.reward.map((r) => (sum += r));
    const lo = Math.min(0, ...cumulative, ...theirs), hi = Math.max(0, ...cumulative, ...theirs);
    const every = compare.series.stride || 1;
    g.setLineDash([5, 4]); line(theirs.slice(0, Math.ceil(series.steps / every)), v("--ink"), lo, hi, every); g.setLineDash([]);
  }
  g.font = "11px system-ui"; g.fillStyle = v("--muted");
  let x = 4; const label = (text, colour) => { g.fillStyle = colour; g.fillText(text, x, 12); x += g.measureText(text).width + 10; };
  label(`${agent}:`, v("--muted"));
  series.meter_names.forEach((m, i) => label(m, palette[i % palette.length]));
  label("cumulative reward", v("--ink"));
  label("step reward (bars)", v("--muted"));
  if (other) label("B (dashed)", v("--ink"));
  if (data.value) label("value", v("--queue"));
  g.strokeStyle = v("--focus"); g.lineWidth = 1; g.beginPath();
  g.moveTo((step / n) * w, 0); g.lineTo((step / n) * w, h); g.stroke();
}

// Completions on the scrubber take a colour per affordance type (the same type, the same colour
// in every episode); hovering the strip names the types.
const TYPE_PALETTE = ["#78c8a0", "#7ab8ff", "#e9c46a", "#c792ea", "#f4a261", "#9ad1d4", "#ff8fab", "#b8e986"];
function typeColour(type) {
  let h = 0;
  for (const ch of String(type)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return TYPE_PALETTE[h % TYPE_PALETTE.length];
}

function drawMarkers() {
  const series = state.series, strip = $("markers");
  if (!series) return;
  const g = sized(strip), w = strip.width, n = Math.max(1, series.steps - 1);
  const css = getComputedStyle(document.documentElement);
  g.clearRect(0, 0, w, strip.height);
  const types = [...new Set(series.markers.filter((m) => m.kind === "completed").map((m) => m.affordance))];
  strip.title = "top: chats, help, takeovers, arrivals, absences, faints; bottom: queue joins"
    + (types.length ? ` and completions (${types.map((t) => `${t} ${typeColour(t)}`).join(", ")})` : "");
  // top row: social and shift events, faints; bottom row: completions and queue joins
  const half = Math.floor(strip.height / 2);
  // a multi-day episode's day axis: a line at each midnight, the new day's name beside it
  g.font = "10px sans-serif";
  for (const m of series.markers) {
    if (m.kind !== "day") continue;
    const x = Math.round((m.step / n) * (w - 2));
    g.fillStyle = css.getPropertyValue("--ink").trim();
    g.fillRect(x, 0, 1, strip.height);
    g.fillText(m.weekday, x + 2, 10);
  }
  for (const m of series.markers) {
    if (m.kind === "day") continue;
    const low = m.kind === "completed" || m.kind === "queue_join";
    g.fillStyle = m.kind === "completed" ? typeColour(m.affordance)
      : css.getPropertyValue(m.kind === "chat" && !m.success ? "--chat-bad" : MARKER_COLOURS[m.kind] || "--muted").trim();
    g.fillRect(Math.round((m.step / n) * (w - 2)), low ? half + 1 : 0, 2, low ? strip.height - half - 1 : half);
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
  if (compare.episode !== undefined) { next.set("compare", compare.episode); next.set("compare_run", compare.run || ""); }
  else { next.delete("compare"); next.delete("compare_run"); }
  const address = `${location.pathname}?${next}`;
  if (address !== location.pathname + location.search) history.replaceState(null, "", address);
}

function describe(e) {  // the server words every event (townlet/recording/wording.py)
  return e.text || `${e.agent}: ${e.kind}`;
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

function eventsUpTo(step) {
  const out = [];
  for (const m of state.series.markers) { if (m.step > step) break; out.push({ step: m.step, e: m }); }
  return out.slice(-EVENT_LOG);
}

function showEvents(update) {
  const list = $("events");
  const recorded = update.events !== undefined;
  list.hidden = $("events-title").hidden = !recorded;  // a recording without events: no list
  if (!recorded) { list.replaceChildren(); list.dataset.state = "not recorded"; return; }
  list.dataset.state = "recorded";
  // a replay lists the episode's events up to the cursor, however it got there (a seek too);
  // live, the events seen so far
  const recent = update.mode === "replay" && state.series ? eventsUpTo(update.step) : state.events;
  const shownUpTo = recent.length ? recent[recent.length - 1].step : -1;
  if (list.dataset.upTo === String(shownUpTo) && list.childElementCount === Math.min(recent.length, EVENT_LOG)) return;
  list.dataset.upTo = String(shownUpTo);
  list.replaceChildren(...recent.slice().reverse().map(({ step, e }) => {
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
    const progress = (update.interaction_progress || {})[agent.id];
    const reward = (update.agent_rewards || {})[agent.id], value = (update.value || {})[agent.id];
    title.append(dot, `${agent.id} · ${agent.last_action.name}`
      + (progress ? ` · progress ${(100 * progress).toFixed(0)}%` : "")
      + (reward !== undefined ? ` · reward ${reward >= 0 ? "+" : ""}${reward.toFixed(3)}` : "")
      + (value !== undefined ? ` · value ${value.toFixed(2)}` : ""));
    box.appendChild(title);
    const facts = situation(agent, update);
    if (facts) { const p = document.createElement("div"); p.className = "situation"; p.textContent = facts; box.appendChild(p); }
    const meters = update.agent_meters[agent.id].meters;
    for (const [name, value] of Object.entries(meters)) box.appendChild(bar(name, value, value.toFixed(2), false, true));
    if (policy && policy[agent.id] && !(agent.source && agent.source !== "focal")) {  // a background agent did not act from it
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

// What the focus adds in words: shift state, queue place, closest friend and any rival (each
// only where the recording has it).
function situation(agent, update) {
  const parts = [];
  if (agent.source) parts.push(agent.source === "focal" ? "focal (the policy)" : `background: ${agent.source}`);
  if (agent.shift) parts.push(agent.job ? `${agent.job}: ${agent.shift}` : `shift: ${agent.shift}`);
  if (agent.queue) parts.push(`queue: ${agent.queue.place} of ${agent.queue.of} at ${agent.queue.at}`);
  const ties = (update.relations || {})[agent.id];
  if (ties && ties.length) {
    const friend = ties.reduce((best, t) => (t[1] > best[1] ? t : best));
    if (friend[1] > 0) parts.push(`closest: ${friend[0]} (familiarity ${friend[1].toFixed(2)})`);
    const threshold = mainView.avoidThreshold;
    for (const [other, , rivalry] of ties) {
      if (threshold !== undefined && threshold !== null && rivalry >= threshold) parts.push(`rival: ${other} (${rivalry.toFixed(2)})`);
    }
  }
  return parts.join(" · ");
}

// Hover: what is on the tile under the pointer, in words (names drawn in full here, however
// small the tile).
function describeTile(update, x, y) {
  const lines = [];
  for (const a of update.grid.affordances) if (a.x === x && a.y === y) {
    lines.push(`${a.name} (${a.type})${a.closed ? " · closed" : ""}${a.busy ? " · in use" : ""}`
      + (a.queue.length ? ` · queue: ${a.queue.join(", ")}` : ""));
  }
  for (const agent of update.grid.agents) if (agent.x === x && agent.y === y) {
    lines.push(`${agent.id}: ${agent.last_action.name}${agent.active === false ? " (inactive)" : ""}`
      + (agent.shift ? ` · ${agent.shift}` : "") + (agent.queue ? ` · queue ${agent.queue.place}/${agent.queue.of}` : ""));
  }
  return lines.join("\n");
}

function hover(view, latest) {
  view.canvas.onmousemove = (event) => {
    const update = latest(), tip = $("tip");
    if (!update || !view.cell) return;
    const box = view.canvas.getBoundingClientRect();
    const x = Math.floor((event.clientX - box.left) / view.cell), y = Math.floor((event.clientY - box.top) / view.cell);
    const text = describeTile(update, x, y);
    tip.hidden = !text; tip.textContent = text;
    tip.style.left = `${event.clientX + 14}px`; tip.style.top = `${event.clientY + 14}px`;
  };
  view.canvas.onmouseleave = () => { $("tip").hidden = true; };
}

// Compare: episode B on its own connection, drawn beside A and held at A's step (or its own
// last step when shorter); B's cumulative reward is dashed on A's chart, and the table lines
// up both episodes' totals, events and reward so far.
const compare = { view: { canvas: $("grid-b"), ctx: $("grid-b").getContext("2d"), trails: {} } };

// `episode` null: B is the run's policy playing live (a replay beside live); it runs at its own
// pace, so it is not held to A's step.
function openCompare(episode, run) {
  closeCompare();
  compare.live = episode === null;
  if (!compare.live) { compare.episode = episode; compare.run = run || null; }
  const socket = new WebSocket(wsUrl);
  compare.socket = socket;
  $("pane-b").hidden = false; $("caption-a").hidden = false; $("compare").hidden = false;
  $("caption-b").textContent = compare.live ? "B: live policy · starting…" : `B: episode ${episode}${run ? ` (${run})` : ""} · loading…`;
  socket.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === "connected") {
      socket.send(JSON.stringify(compare.live ? { type: "load_checkpoint" } : { type: "load_replay", episode_id: episode, ...(run ? { run } : {}) }));
    } else if (m.type === "episode_start") {
      compare.view.trails = {}; compare.total = undefined;
      $("caption-b").textContent = `B: live policy · episode ${m.episode_id} · ${m.scenario}`;
    } else if (m.type === "replay_loaded") {
      compare.total = m.total_steps; compare.meta = m.metadata; compare.run = m.run; compare.sent = 0;
      compare.view.avoidThreshold = m.avoid_threshold; compare.view.trails = {};
      $("caption-b").textContent = `B: episode ${m.episode_id} (${m.run}) · ${m.total_steps} steps · total ${m.metadata.total_reward.toFixed(3)}`;
      socket.send(JSON.stringify({ type: "episode_series" }));
      if (state.last) followCompare(state.last);
    } else if (m.type === "episode_series") { compare.series = m; if (state.last) { drawCharts(state.last.step); compareTable(); } }
    else if (m.type === "state_update") {
      compare.last = m; window.townletCompareLast = m;
      drawTown(compare.view, m); drawFocus(compare.view, m); compareTable();
    } else if (m.type === "error") showError(`B: ${m.message}`);
  };
  if (state.last) followUrl(state.last);
}

function closeCompare() {
  if (compare.socket) { compare.socket.onmessage = null; compare.socket.close(); }
  for (const key of ["socket", "episode", "run", "total", "meta", "series", "last", "sent", "live"]) delete compare[key];
  $("pane-b").hidden = true; $("caption-a").hidden = true; $("compare").hidden = true;
  window.townletCompareLast = undefined;
}

function followCompare(update) {
  if (!compare.socket || compare.total === undefined || compare.socket.readyState !== WebSocket.OPEN) return;
  const target = Math.min(update.step, compare.total - 1);
  if (compare.sent === target) return;
  compare.sent = target;
  compare.socket.send(JSON.stringify({ type: "replay_control", action: "seek", seek_step: target }));
}

function counts(series) {
  const out = { chats: 0, "failed chats": 0, "on time": 0, late: 0, absent: 0, faints: 0, "late help": 0, takeovers: 0, completions: 0, "rent paid": 0, "rent missed": 0 };
  const key = { on_time: "on time", late: "late", absent: "absent", faint: "faints", late_help: "late help", takeover: "takeovers", completed: "completions", rent_paid: "rent paid", rent_missed: "rent missed" };
  for (const m of series.markers) {
    if (m.kind === "chat") out[m.success ? "chats" : "failed chats"] += 1;
    else if (key[m.kind]) out[key[m.kind]] += 1;
  }
  return out;
}

function compareTable() {
  const a = state.last, b = compare.last;
  if (!a || !b || $("compare").hidden) return;
  // [name, A, B, decimals]: rewards to 3 places, counts whole
  const rows = [["step", a.step + 1, b.step + 1, 0], ["reward so far", a.cumulative_reward, b.cumulative_reward, 3]];
  if (compare.total !== undefined) rows.push(["episode steps", state.total, compare.total, 0]);
  if (a.replay_metadata && compare.meta) rows.push(["total reward", a.replay_metadata.total_reward, compare.meta.total_reward, 3]);
  if (state.series && compare.series) {
    const ca = counts(state.series), cb = counts(compare.series);
    for (const name of Object.keys(ca)) if (ca[name] || cb[name]) rows.push([name, ca[name], cb[name], 0]);
  }
  const body = document.querySelector("#compare-metrics tbody");
  body.replaceChildren(...rows.map(([name, x, y, places]) => {
    const tr = document.createElement("tr"), show = (n) => n.toFixed(places);
    for (const text of [name, show(x), show(y), (y - x >= 0 ? "+" : "") + show(y - x)]) {
      const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
    }
    tr.dataset.metric = name; return tr;
  }));
}

// A new window size refits the canvases at once, not at the next update.
window.addEventListener("resize", () => {
  if (state.last) render(state.last);
  if (compare.last) { drawTown(compare.view, compare.last); drawFocus(compare.view, compare.last); }
});
$("compare-close").onclick = () => { closeCompare(); if (state.last) { followUrl(state.last); drawCharts(state.last.step); } };
hover(mainView, () => state.last);
hover(compare.view, () => compare.last);
if (params.has("compare")) openCompare(parseInt(params.get("compare"), 10), params.get("compare_run") || null);

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
$("live").onclick = () => send({ type: "load_checkpoint" });  // the run's policy (selected, else latest)
$("live-b").onclick = () => openCompare(null, null);
connect();
