// The Rules panel: the events plugin's rules with their last firing, firings counted and
// state, each expandable to its last traces, so an operator can see why a rule did (or did
// not) fire. Shown only when /api/v1/rules says the plugin is installed.
//
// Live without polling: a firing sets the rule's point `events.<file>.<line>` to the firing's
// time, which arrives on the page's points stream (`pointsChanged`); the counts, states and
// open traces are then fetched again, at most once a second however fast rules fire.
// Rule texts and traces are user input: every server text goes in with textContent.
import { ago, clock, fullTime } from "./format.js";
import { matcher } from "./match.js";

const MAX_SHOWN = 500;
const TRACES = 20;
const REFRESH_GAP_MS = 1000;
const POINT_PREFIX = "events.";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function commonDirectory(ids) {
  // The directory every rule file shares ("/etc/ioplex/rules/"), left out of the ids shown
  // so the part that tells rules apart (file:line) stays in view.
  let prefix = null;
  for (const id of ids) {
    const dir = id.slice(0, id.lastIndexOf("/") + 1);
    if (prefix === null) prefix = dir;
    while (prefix && !dir.startsWith(prefix)) prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf("/") + 1);
    if (!prefix) return "";
  }
  return prefix || "";
}

function statusOf(rule) {
  // [badge text, css class, explanation]
  if (rule.disabled) {
    const runaway = /runaway/i.test(rule.disabled);
    return [runaway ? "runaway" : "disabled", "r-disabled", rule.disabled];
  }
  if (rule.running > 0) return ["running", "r-running", `${rule.running} firing(s) running now`];
  if (rule.view === false) return ["", "", ""];
  return ["idle", "r-idle", "enabled, waiting for its event"];
}

export class RulesPanel {
  constructor(section, api) {
    this.section = section;
    this.api = api;
    this.body = section.querySelector("tbody");
    this.filter = section.querySelector("input[type=search]");
    this.count = section.querySelector(".count");
    this.note = section.querySelector(".note");
    this.rules = new Map(); // key -> rule data
    this.byPoint = new Map(); // point name -> key
    this.rows = new Map(); // key -> {row, detail, cells, button, box, traced}
    this.serial = 0;
    this.prefix = "";
    this.wanted = false; this.refreshing = false; this.last = 0;
    this.own = null; // a watch of events.* of our own, while the page watches UI variables
    this.filter.addEventListener("input", () => this.render());
  }

  // -- data ------------------------------------------------------------------------------
  schedule() {
    // Coalesce: one refresh runs at a time, the next at least REFRESH_GAP_MS after it.
    this.wanted = true;
    if (this.refreshing) return;
    this.refreshing = true;
    (async () => {
      try {
        while (this.wanted) {
          this.wanted = false;
          const wait = this.last + REFRESH_GAP_MS - Date.now();
          if (wait > 0) await sleep(wait);
          this.last = Date.now();
          await this.refresh();
        }
      } finally {
        this.refreshing = false;
      }
    })();
  }

  async refresh() {
    let listing;
    try {
      listing = await this.api("/api/v1/rules");
    } catch (error) {
      if (!this.section.hidden) {
        this.note.textContent = `cannot read the rules: ${error.message}`;
        this.note.className = "note error";
      }
      return;
    }
    this.section.hidden = !listing.installed;
    if (!listing.installed) return;
    let view = null;
    let problem = "";
    try {
      view = await this.api("/api/v1/views/events.rules");
    } catch (error) {
      problem = `rule texts and states are unavailable: ${error.message}`;
    }
    this.merge(listing.items, view);
    // a failure is an error; an engine that is not running or has no rules is just so
    let quiet = "";
    if (!problem && view && view.engine === false) {
      quiet = "The events plugin is installed but not running: no rules (see [plugins.events] in the configuration).";
    } else if (!problem && !this.rules.size) quiet = "No rules are loaded (the files of [plugins.events]).";
    this.note.textContent = problem || quiet;
    this.note.className = `note ${problem ? "error" : "muted"}`;
    this.section.querySelector(".rules-body").hidden = !this.rules.size;
    this.render();
    for (const [key, row] of this.rows) {
      const rule = this.rules.get(key);
      if (rule && row.button.getAttribute("aria-expanded") === "true" && row.traced !== rule.last_fired) {
        await this.loadTraces(key);
      }
    }
  }

  merge(items, view) {
    const rules = new Map();
    const byPoint = new Map();
    for (const item of items) {
      const old = this.rules.get(item.rule);
      rules.set(item.rule, {
        key: item.rule, id: item.rule, point: item.point, text: item.description || "",
        fired: item.fires, skipped: 0, running: 0, disabled: null, view: false,
        last_fired: Math.max(item.last_fired ?? 0, old ? old.last_fired ?? 0 : 0) || null,
      });
      byPoint.set(item.point, item.rule);
    }
    for (const r of view ? view.rules : []) {
      const key = r.point && byPoint.has(r.point) ? byPoint.get(r.point) : r.rule;
      const rule = rules.get(key) || { key, point: r.point, last_fired: null };
      Object.assign(rule, {
        id: r.rule, text: r.text, fired: r.fired, skipped: r.skipped, running: r.running,
        disabled: r.disabled, view: true,
        last_fired: Math.max(rule.last_fired ?? 0, r.last_fired ?? 0) || null,
      });
      rules.set(key, rule);
      if (r.point) byPoint.set(r.point, key);
    }
    for (const key of this.rows.keys()) if (!rules.has(key)) this.rows.delete(key);
    this.rules = rules;
    this.byPoint = byPoint;
    this.prefix = commonDirectory([...rules.values()].map((r) => r.id));
  }

  /** Changes from the points stream: [name, value, quality, time] rows. */
  pointsChanged(rows) {
    let any = false;
    for (const [name, value] of rows) {
      if (!name.startsWith(POINT_PREFIX)) continue;
      any = true;
      const key = this.byPoint.get(name);
      const rule = key !== undefined && this.rules.get(key);
      if (rule && typeof value === "number") {
        rule.last_fired = value;
        const row = this.rows.get(key);
        if (row) this.fill(row, rule);
      }
    }
    if (any) this.schedule();
  }

  /** While the page's stream carries UI variables, follow the rule points with a watch of our own. */
  follow(ownStream) {
    if (this.own) { this.own.close(); this.own = null; }
    if (!ownStream) return;
    this.own = new EventSource(`/api/v1/watch?pattern=${encodeURIComponent(POINT_PREFIX + "*")}`);
    this.own.addEventListener("changes", (event) => this.pointsChanged(JSON.parse(event.data)));
    this.own.addEventListener("snapshot", (event) => {
      if (JSON.parse(event.data).done) this.schedule();
    });
  }

  // -- drawing ---------------------------------------------------------------------------
  render() {
    if (this.section.hidden) return;
    const match = matcher(this.filter.value);
    const keys = [...this.rules.keys()].filter((key) => {
      const r = this.rules.get(key);
      return match(r.id, `${r.text}\n${r.key}`);
    }).sort((a, b) => this.rules.get(a).id.localeCompare(this.rules.get(b).id, undefined, { numeric: true }));
    const shown = keys.slice(0, MAX_SHOWN);
    this.count.textContent = !this.rules.size ? "" : `(${keys.length} of ${this.rules.size})` +
      (keys.length > shown.length ? `, the first ${shown.length} shown: filter to narrow` : "");
    const wanted = [];
    for (const key of shown) {
      const row = this.rows.get(key) || this.makeRow(key);
      this.fill(row, this.rules.get(key));
      wanted.push(row.row, row.detail);
    }
    // Move only what is out of place, so a focused button keeps its focus.
    let cursor = this.body.firstChild;
    for (const node of wanted) {
      if (node === cursor) cursor = cursor.nextSibling;
      else this.body.insertBefore(node, cursor);
    }
    while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
  }

  makeRow(key) {
    const n = ++this.serial;
    const row = el("tr");
    row.dataset.rule = key;
    const head = el("th");
    head.scope = "row";
    const button = el("button", "rule-toggle");
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", `rule-traces-${n}`);
    const label = el("span", "rule-id");
    const chevron = el("span", "chevron", "▸");
    chevron.setAttribute("aria-hidden", "true"); // aria-expanded says it
    button.append(chevron, label);
    head.append(button);
    const text = el("td", "rule-text");
    const code = el("code");
    text.append(code);
    const last = el("td", "rule-last");
    const fired = el("td", "rule-fired");
    const status = el("td", "rule-status");
    const badge = el("span", "rule-state");
    status.append(badge);
    row.append(head, text, last, fired, status);
    const detail = el("tr", "rule-detail");
    detail.id = `rule-traces-${n}`;
    detail.hidden = true;
    const cell = el("td");
    cell.colSpan = 5;
    const box = el("div", "traces");
    box.setAttribute("aria-live", "polite");
    cell.append(box);
    detail.append(cell);
    const entry = { row, detail, button, box, label, code, last, fired, badge, traced: undefined };
    button.addEventListener("click", () => this.toggle(key));
    this.rows.set(key, entry);
    return entry;
  }

  fill(entry, rule) {
    const shown = rule.id.startsWith(this.prefix) ? rule.id.slice(this.prefix.length) : rule.id;
    if (entry.label.textContent !== shown) {
      entry.label.textContent = shown;
      entry.button.title = rule.point ? `${rule.id} (point ${rule.point})` : rule.id;
    }
    if (entry.code.textContent !== rule.text) { entry.code.textContent = rule.text; entry.code.title = rule.text; }
    const t = rule.last_fired;
    if (String(t ?? "") !== entry.last.dataset.t) {
      if (entry.last.dataset.t !== undefined) {
        entry.row.classList.remove("flash");
        void entry.row.offsetWidth; // restart the animation
        entry.row.classList.add("flash");
      }
      entry.last.dataset.t = String(t ?? "");
      entry.last.title = t ? fullTime(t) : "";
    }
    entry.last.textContent = t ? ago(t) : "never";
    entry.fired.textContent = String(rule.fired ?? 0);
    entry.fired.title = rule.skipped ? `${rule.skipped} skipped` : "";
    const [text, cls, why] = statusOf(rule);
    entry.badge.textContent = text;
    entry.badge.className = `rule-state ${cls}`;
    entry.badge.title = why;
  }

  renderAges() {
    if (this.section.hidden) return;
    for (const cell of this.body.querySelectorAll(".rule-last")) {
      const t = Number(cell.dataset.t);
      if (t) cell.textContent = ago(t);
    }
  }

  // -- traces ----------------------------------------------------------------------------
  async toggle(key) {
    const entry = this.rows.get(key);
    if (!entry) return;
    const open = entry.button.getAttribute("aria-expanded") !== "true";
    entry.button.setAttribute("aria-expanded", String(open));
    entry.button.querySelector(".chevron").textContent = open ? "▾" : "▸";
    entry.detail.hidden = !open;
    if (open) {
      entry.box.replaceChildren(el("p", "muted", "loading the last firings…"));
      await this.loadTraces(key);
    } else {
      entry.traced = undefined;
    }
  }

  async loadTraces(key) {
    const entry = this.rows.get(key);
    const rule = this.rules.get(key);
    if (!entry || !rule) return;
    const name = rule.point ? rule.point.slice(POINT_PREFIX.length) : rule.id;
    const path = `/api/v1/rules/${name.split("/").map(encodeURIComponent).join("/")}/traces?limit=${TRACES}`;
    let data;
    try {
      data = await this.api(path);
    } catch (error) {
      entry.box.replaceChildren(el("p", "error", `cannot read the traces: ${error.message}`));
      return;
    }
    entry.traced = rule.last_fired;
    const parts = [];
    if (rule.disabled) parts.push(el("p", "error", `Disabled: ${rule.disabled}`));
    if (!data.traces.length) {
      parts.push(el("p", "muted", "no firings kept for this rule yet"));
    } else {
      parts.push(this.tracesTable(rule, data.traces));
    }
    entry.box.replaceChildren(...parts);
  }

  tracesTable(rule, traces) {
    const table = el("table", "trace-table");
    const caption = el("caption", "muted", `last ${traces.length} firing(s) of ${rule.id}, newest first`);
    const head = el("thead");
    const tr = el("tr");
    for (const title of ["Time", "Trigger", "Actions", "Status"]) {
      const th = el("th", "", title);
      th.scope = "col";
      tr.append(th);
    }
    head.append(tr);
    const body = el("tbody");
    for (const trace of traces) {
      const row = el("tr", "trace");
      const time = el("td", "trace-time", clock(trace.time));
      time.title = fullTime(trace.time);
      const trigger = el("td", "trace-trigger", trace.trigger || "");
      const actions = el("td", "trace-actions");
      const list = el("ul");
      let failed = false;
      for (const [text, result] of trace.actions || []) {
        const li = el("li");
        const ok = result === "ok";
        failed ||= !ok;
        li.append(el("code", "", text), " ",
                  el("span", `result ${ok ? "ok" : "error"}`, `${ok ? "✓" : "✗"} ${result}`));
        list.append(li);
      }
      if (!list.children.length) list.append(el("li", "muted", "no action ran"));
      actions.append(list);
      const status = trace.status || "";
      const cls = status === "done" ? (failed ? "error" : "ok") : status.startsWith("skipped") ? "warn" : "error";
      const state = el("td", `trace-status ${cls}`, failed && status === "done" ? "done, with errors" : status);
      row.classList.toggle("failed", cls === "error");
      row.append(time, trigger, actions, state);
      body.append(row);
    }
    table.append(caption, head, body);
    return table;
  }
}
