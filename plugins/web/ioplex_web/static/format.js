// How values and ages are shown (the metadata conventions of docs/architecture.md).

export function formatValue(p) {
  const v = p.value;
  if (v === null || v === undefined) return "—";
  if (p.format === "epoch-ms" && typeof v === "number") return new Date(v).toISOString();
  let text = typeof v === "string" ? JSON.stringify(v) : String(v);
  if (text.length > 200) text = text.slice(0, 200) + "…";
  return p.unit ? `${text} ${p.unit}` : text;
}

export function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function clock(seconds) {
  // A moment as the page's log shows it: the time of day, with the date when not today.
  const when = new Date(seconds * 1000);
  const time = when.toLocaleTimeString();
  return when.toDateString() === new Date().toDateString() ? time : `${when.toLocaleDateString()} ${time}`;
}

export function fullTime(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}
