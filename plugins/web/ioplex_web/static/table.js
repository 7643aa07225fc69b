// A virtually scrolled points table: only the rows in view exist in the DOM, so 100,000
// points scroll and update as smoothly as 100. Rows are fixed-height; the spacer gives the
// scrollbar its full length.
import { ago, formatValue } from "./format.js";

const ROW = 28;
const OVERSCAN = 10;

export class VirtualTable {
  constructor(viewport, spacer, rows, { onActivate, canWrite }) {
    this.viewport = viewport; this.spacer = spacer; this.rows = rows;
    this.canWrite = Boolean(canWrite);
    this.onActivate = onActivate;
    this.names = []; this.points = new Map(); this.first = 0; this.focused = null;
    this.pending = null;
    viewport.addEventListener("scroll", () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(viewport);
    viewport.addEventListener("keydown", (event) => this.key(event));
    rows.addEventListener("dblclick", (event) => {
      const row = event.target.closest("[data-name]");
      if (row) this.onActivate(row.dataset.name);
    });
  }

  setRows(names, points) {
    this.names = names; this.points = points;
    this.spacer.style.height = `${names.length * ROW}px`;
    this.viewport.setAttribute("aria-rowcount", String(names.length));
    this.schedule();
  }

  update(changed) {
    // Only redraw when a changed point is on screen.
    for (const el of this.rows.children) {
      if (changed.has(el.dataset.name)) { this.schedule(); return; }
    }
  }

  schedule() {
    if (this.pending === null) this.pending = requestAnimationFrame(() => { this.pending = null; this.render(); });
  }

  render() {
    const top = this.viewport.scrollTop;
    const count = Math.ceil(this.viewport.clientHeight / ROW) + 2 * OVERSCAN;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.names.length, first + count);
    this.first = first;
    this.rows.style.transform = `translateY(${first * ROW}px)`;
    const have = this.rows.children;
    while (have.length < last - first) this.rows.append(this.makeRow());
    while (have.length > last - first) this.rows.lastElementChild.remove();
    for (let i = first; i < last; i++) this.fill(have[i - first], this.names[i], i);
  }

  makeRow() {
    const row = document.createElement("div");
    row.className = "row"; row.setAttribute("role", "row");
    for (const cls of ["name", "value", "quality", "age"]) {
      const cell = document.createElement("span");
      cell.className = cls; cell.setAttribute("role", "cell");
      row.append(cell);
    }
    return row;
  }

  fill(row, name, index) {
    const p = this.points.get(name);
    if (!p) return;
    const [cName, cValue, cQuality, cAge] = row.children;
    if (row.dataset.name !== name) {
      row.dataset.name = name;
      row.setAttribute("aria-rowindex", String(index + 1));
      cName.textContent = name;
      cName.title = p.description || name;
    }
    row.classList.toggle("writable", this.canWrite && Boolean(p.writable));
    row.tabIndex = -1;
    const value = formatValue(p);
    if (cValue.textContent !== value) cValue.textContent = value;
    cQuality.textContent = p.quality;
    cQuality.className = `quality q-${p.quality}`;
    cAge.textContent = p.changed ? ago(p.changed) : "";
    cAge.dataset.t = p.changed || "";
  }

  renderAges() {
    for (const el of this.rows.children) {
      const t = Number(el.children[3].dataset.t);
      if (t) el.children[3].textContent = ago(t);
    }
  }

  key(event) {
    const current = document.activeElement.closest && document.activeElement.closest("[data-name]");
    let index = current ? this.names.indexOf(current.dataset.name) : -1;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      index = Math.min(this.names.length - 1, Math.max(0, index + (event.key === "ArrowDown" ? 1 : -1)));
      event.preventDefault();
      this.focusIndex(index);
    } else if (event.key === "Enter" && current) {
      event.preventDefault();
      this.onActivate(current.dataset.name);
    }
  }

  focusIndex(index) {
    const top = index * ROW, view = this.viewport;
    if (top < view.scrollTop) view.scrollTop = top;
    else if (top + ROW > view.scrollTop + view.clientHeight) view.scrollTop = top + ROW - view.clientHeight;
    this.render();
    const row = this.rows.children[index - this.first];
    if (row) row.focus();
  }
}
