// ioplex status page: plain ES module, no build step. Talks to /api/v1 with the session
// cookie (EventSource cannot send an Authorization header).
import { VirtualTable } from "./table.js";
import { ago } from "./format.js";
import { globToRegExp, matcher } from "./match.js";
import { RulesPanel } from "./rules.js";

const $ = (sel) => document.querySelector(sel);
const HEADERS = { "x-requested-with": "ioplex-page" };
const state = { me: null, ui: false, source: null, points: new Map(), table: null, logSeq: 0, rules: null };

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...HEADERS, ...(options.headers || {}) },
                                       credentials: "same-origin" });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const error = new Error(body && body.error ? body.error.message : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

// -- login ------------------------------------------------------------------------------
async function start() {
  try {
    state.me = await api("/api/v1/session");
  } catch (error) {
    if (error.status === 401) return showLogin();
    $("#stream-state").textContent = `error: ${error.message}`;
    return;
  }
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#host-name").textContent = state.me.host;
  $("#write-hint").hidden = state.me.role !== "write";
  $("#who").textContent = state.me.open ? "read-only (no users configured)"
    : `${state.me.name} (${state.me.role})`;
  state.table = new VirtualTable($("#points"), $("#points-spacer"), $("#points-rows"), {
    onActivate: openWrite, canWrite: state.me.role === "write",
  });
  state.rules = new RulesPanel($("#rules"), api);
  state.rules.schedule();
  connect();
  refreshHealth();
  setInterval(refreshHealth, 2000);
  setInterval(() => { state.table.renderAges(); state.rules.renderAges(); }, 1000);
  loadLoggers();
}

function showLogin() {
  const form = $("#login");
  form.hidden = false;
  form.querySelector("input[name=name]").focus();
  form.onsubmit = async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    try {
      await api("/api/v1/session", { method: "POST", body: JSON.stringify(data),
                                     headers: { "content-type": "application/json" } });
      $("#login-error").textContent = "";
      start();
    } catch (error) {
      $("#login-error").textContent = error.message;
    }
  };
}

// -- live points ---------------------------------------------------------------------------
function connect() {
  if (state.source) state.source.close();
  state.points = new Map();
  const path = state.ui ? "/api/v1/ui-watch" : "/api/v1/watch";
  const source = new EventSource(path);
  state.source = source;
  // the rule points (events.*) are in the points stream; with UI variables shown, the
  // rules panel follows them with a watch of its own
  state.rules.follow(state.ui);
  const badge = $("#stream-state");
  source.onopen = () => { badge.textContent = "live"; badge.className = "badge live"; };
  source.onerror = () => { badge.textContent = "reconnecting…"; badge.className = "badge down"; };
  let loading = false;
  source.addEventListener("snapshot", (event) => {
    // a snapshot replaces what we had (after a host restart, points may have gone)
    if (!loading) { state.points = new Map(); loading = true; }
    const data = JSON.parse(event.data);
    for (const p of data.points) state.points.set(p.name, p);
    if (data.done) { loading = false; applyFilter(); fillLogger(); if (!state.ui) state.rules.schedule(); }
  });
  source.addEventListener("reset", () => { state.points = new Map(); });
  source.addEventListener("changes", (event) => {
    const rows = JSON.parse(event.data);
    let added = false;
    const changed = new Set();
    for (const [name, value, quality, time] of rows) {
      let p = state.points.get(name);
      if (!p) { p = { name, writable: false }; state.points.set(name, p); added = true; }
      p.value = value; p.quality = quality; p.changed = time;
      changed.add(name);
    }
    if (added) applyFilter(); else state.table.update(changed);
    if (!state.ui) state.rules.pointsChanged(rows);
  });
}

function applyFilter() {
  const match = matcher($("#filter").value);
  const names = [];
  for (const [name, p] of state.points) if (match(name, p.description)) names.push(name);
  names.sort();
  state.table.setRows(names, state.points);
  $("#points-count").textContent = `(${names.length} of ${state.points.size})`;
}

// -- writing ---------------------------------------------------------------------------------
function openWrite(name) {
  const p = state.points.get(name);
  if (!p || !p.writable || !state.me || state.me.role !== "write") return;
  const dialog = $("#write-dialog");
  $("#write-name").textContent = name;
  const range = p.min !== undefined || p.max !== undefined ? ` range ${p.min ?? "…"}–${p.max ?? "…"}` : "";
  $("#write-info").textContent = `type ${p.type || "any"}${range}${p.description ? " · " + p.description : ""}`;
  const input = $("#write-value");
  input.value = p.value === null || p.value === undefined ? "" : String(p.value);
  $("#write-error").textContent = "";
  dialog.returnFocus = document.activeElement;
  dialog.showModal();
  input.select();
  $("#write-cancel").onclick = () => dialog.close();
  dialog.onclose = () => { if (dialog.returnFocus) dialog.returnFocus.focus(); };
  $("#write-form").onsubmit = async (event) => {
    event.preventDefault();
    let value = input.value;
    let body = null;
    if (p.type === "int") {
      // sent as written, so the host (not JavaScript's doubles) judges the range
      if (!/^\s*-?\d+\s*$/.test(value)) {
        $("#write-error").textContent = `${value} is not a whole number`;
        return;
      }
      body = `{"value": ${value.trim()}}`;
    } else if (p.type === "float") value = Number(value);
    else if (p.type === "bool") value = ["1", "true", "on", "yes"].includes(value.trim().toLowerCase());
    else if (p.type !== "str") { try { value = JSON.parse(value); } catch { /* keep the text */ } }
    if (typeof value === "number" && Number.isNaN(value)) {
      $("#write-error").textContent = `${input.value} is not a number`;
      return;
    }
    try {
      const base = state.ui ? "/api/v1/ui/" : "/api/v1/points/";
      await api(base + encodeURIComponent(name), { method: "PUT", body: body ?? JSON.stringify({ value }),
                                                   headers: { "content-type": "application/json" } });
      dialog.close();
    } catch (error) {
      $("#write-error").textContent = error.message;
    }
  };
}

// -- health and log --------------------------------------------------------------------------
async function refreshHealth() {
  try {
    const [ios, services, log] = await Promise.all([
      api("/api/v1/ioservers"), api("/api/v1/services"), api(`/api/v1/log?after=${state.logSeq}`)]);
    const body = $("#health tbody");
    body.replaceChildren(...[...ios.items, ...services.items].map((e) => {
      const tr = document.createElement("tr");
      const cells = [e.name, e.kind, e.state, ago(e.since), String(e.reconnects),
                     e.detail || e.last_error || ""];
      for (const [i, text] of cells.entries()) {
        const td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) td.scope = "row";
        td.textContent = text;
        if (i === 2) td.className = `s-${e.state}`;
        tr.append(td);
      }
      return tr;
    }));
    const list = $("#log");
    for (const entry of log.items) {
      state.logSeq = Math.max(state.logSeq, entry.seq);
      const li = document.createElement("li");
      li.textContent = `${new Date(entry.time * 1000).toLocaleTimeString()} ${entry.kind} ${entry.name}: ` +
        `${entry.state}${entry.detail ? " (" + entry.detail + ")" : ""}`;
      list.prepend(li);
    }
    while (list.children.length > 200) list.lastElementChild.remove();
  } catch (error) {
    if (error.status === 401) location.reload();
  }
}

// -- history chart -----------------------------------------------------------------------------
let loggers = [];
let plot = null;

async function loadLoggers() {
  loggers = (await api("/api/v1/loggers")).items;
  const select = $("#logger");
  select.replaceChildren(...loggers.map((l) => new Option(`${l.id} (${l.kind})`, l.id)));
  select.onchange = fillLogger;
  $("#chart-load").onclick = drawChart;
  if (!loggers.length) $("#chart-note").textContent = "no data loggers are configured";
  fillLogger();
}

function fillLogger() {
  if (!loggers.length) return;
  const logger = loggers.find((l) => l.id === $("#logger").value);
  if (!logger) return;
  const previous = $("#level").value;
  $("#level").replaceChildren(...logger.levels.map((l) => new Option(l, l)));
  $("#level").value = logger.levels.includes(previous) ? previous
    : logger.levels.includes("hour") ? "hour" : logger.levels[0];
  const names = [...state.points.keys()].filter((n) => logger.points.some((p) => globToRegExp(p).test(n))).sort();
  $("#chart-point").replaceChildren(...names.slice(0, 2000).map((n) => new Option(n, n)));
}

async function drawChart() {
  const id = $("#logger").value, level = $("#level").value, point = $("#chart-point").value;
  if (!id || !point) return;
  const end = Date.now() / 1000, start = end - Number($("#range").value);
  const params = new URLSearchParams({ level, start, end, pattern: point });
  const data = await api(`/api/v1/loggers/${encodeURIComponent(id)}/data?${params}`);
  let xs = [], ys = [], lows = [], highs = [];
  for (const row of data.rows) {
    if (level === "raw") { if (row[3] !== null) { xs.push(row[1]); ys.push(row[3]); } }
    else { xs.push(row[0]); ys.push(row[6]); lows.push(row[4]); highs.push(row[5]); }
  }
  $("#chart-note").textContent = `${xs.length} ${level === "raw" ? "samples" : level + " intervals"}` +
    (data.truncated ? " (truncated)" : "");
  const series = [{}, { label: point, stroke: "#0969da", width: 1.5 }];
  const columns = [xs, ys];
  if (level !== "raw") {
    series.push({ label: "min", stroke: "#8c959f", dash: [4, 4] }, { label: "max", stroke: "#8c959f", dash: [4, 4] });
    columns.push(lows, highs);
  }
  if (plot) plot.destroy();
  const box = $("#chart");
  plot = new window.uPlot({ width: Math.max(300, box.clientWidth), height: 260, series }, columns, box);
}

$("#filter").addEventListener("input", () => state.table && applyFilter());
$("#show-ui").addEventListener("change", (event) => { state.ui = event.target.checked; if (state.table) connect(); });
start();
