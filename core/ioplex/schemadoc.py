"""Markdown tables generated from option schemas, in the shape of the HSYCO options tables."""

from __future__ import annotations

import json
from typing import Any


def _values(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    types = schema.get("type")
    if types == "boolean":
        return "`true`, `false`"
    if types in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        kind = "integer" if types == "integer" else "number"
        if low is not None and high is not None:
            return f"{kind} {low}...{high}"
        if low is not None:
            return f"{kind} ≥ {low}" if "minimum" in schema else f"{kind} > {low}"
        return kind
    if types == "string":
        return "string" + (" (secret)" if schema.get("writeOnly") else "")
    if types == "array":
        return f"list of {_values(schema.get('items', {})) or 'values'}"
    if types == "object":
        return "table"
    if isinstance(types, list):
        return " or ".join(types)
    return ""


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def rows(schema: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(option, default, values, description) for each property of an object schema."""
    out = []
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        if "default" in sub:
            default = f"`{json.dumps(sub['default'])}`"
        else:
            default = "(required)" if name in required else "(unset)"
        if sub.get("writeOnly") and "default" in sub:
            default = "(none)" if not sub["default"] else "(set)"
        out.append((name, default, _values(sub), sub.get("description", "")))
    return out


def table(schema: dict[str, Any]) -> str:
    lines = ["| option | default | values | description |", "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows(schema)]
    return "\n".join(lines)


def markdown(type_name: str, schema: dict[str, Any]) -> str:
    """The settings and options tables of one I/O server type's schema."""
    parts = [f"### `{type_name}` I/O server", ""]
    if schema.get("description"):
        parts += [schema["description"], ""]
    settings = {
        "properties": {k: v for k, v in schema.get("properties", {}).items() if k != "options"},
        "required": schema.get("required", []),
    }
    if settings["properties"]:
        parts += ["Settings of `[ioservers.<name>]`:", "", table(settings), ""]
    options = schema.get("properties", {}).get("options")
    if options:
        parts += ["Options, `[ioservers.<name>.options]`:", "", table(options), ""]
    return "\n".join(parts)


def _nested(path: str, schema: dict[str, Any]) -> list[str]:
    """A table for `schema` headed `path`, then one for each nested table, depth first."""
    parts = [f"### `{path}`", ""]
    if schema.get("description"):
        parts += [schema["description"], ""]
    parts += [table(schema), ""]
    for name, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and sub.get("properties"):
            parts += _nested(f"{path[:-1]}.{name}]", sub)
        items = sub.get("items", {})
        if sub.get("type") == "array" and items.get("properties"):
            parts += _nested(f"[{path[:-1]}.{name}]]", items)
    return parts


def plugin_markdown(plugin: str, settings: dict[str, Any] | None, types: dict[str, Any]) -> str:
    """Every table of a plugin: its I/O server types, then its plugin-wide settings."""
    parts = [markdown(name, schema) for name, schema in types.items()]
    if settings and settings.get("properties"):
        parts += _nested(f"[plugins.{plugin}]", settings)
    return "\n".join(parts).rstrip() + "\n"


def host_markdown(schema: dict[str, Any]) -> str:
    """The tables of the configuration file itself: ``[host]`` and the other top-level
    tables that have properties of their own."""
    parts: list[str] = []
    for name, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and sub.get("properties"):
            parts += _nested(f"[{name}]", sub)
    return "\n".join(parts).rstrip() + "\n"


BEGIN = "<!-- BEGIN ioplex schema -->"
END = "<!-- END ioplex schema -->"


def section(text: str) -> str:
    """The generated part of a README: what stands between BEGIN and END."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no generated section: add the lines {BEGIN} and {END}")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def replace_section(text: str, generated: str) -> str:
    """`text` with its generated part replaced by `generated`."""
    section(text)  # raises when the markers are missing
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{generated.strip()}\n{END}{tail}"
