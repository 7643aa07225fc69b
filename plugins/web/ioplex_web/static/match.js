// The filter boxes' language, shared by the points table and the rules panel: a glob
// (`dummy.*`, `rules?.txt`) matches the whole name; plain text matches anywhere in the name
// or in the extra text given (a description, a rule's text), ignoring case.

export function globToRegExp(glob) {
  const escaped = glob.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

export function matcher(text) {
  text = text.trim();
  if (!text) return () => true;
  if (/[*?[]/.test(text)) {
    let re;
    try { re = globToRegExp(text); } catch { return () => false; }
    return (name) => re.test(name);
  }
  const low = text.toLowerCase();
  return (name, extra) => name.toLowerCase().includes(low) || (extra || "").toLowerCase().includes(low);
}
