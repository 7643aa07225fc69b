"""Hostile configuration files: property-based fuzzing of `ioplex.config.load` (what
``ioplex check`` runs) with the built-in plugins alone and with every installed plugin.

Documents are TOML of every type (strings with any character, 64-bit and larger integers,
NaN and infinities, dates and times, arrays, tables) under random keys, built from a valid
configuration and mutated, plus raw bytes spliced in. Whatever the file says, only
`ioplex.ConfigError` escapes; every problem names a path (or the file, for unreadable
TOML); and no secret — a value given as ``{env = ...}`` or written in a writeOnly field —
appears in the message.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import string
from pathlib import Path
from typing import Any

import ioplex
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex.config import load

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECRET_VAR = "IOPLEX_FUZZ_SECRET"


@functools.cache
def builtin_plugins() -> ioplex.Plugins:
    plugins = ioplex.Plugins()
    plugins.load_builtins()
    return plugins


@functools.cache
def all_plugins() -> ioplex.Plugins:
    return ioplex.load_plugins(environ={})


def write_only(plugins: ioplex.Plugins) -> dict[str, list[str]]:
    """Top-level writeOnly fields of each I/O server type's schema (passwords)."""
    return {
        name: [k for k, v in iotype.schema.get("properties", {}).items() if v.get("writeOnly")]
        for name, iotype in plugins.types.items()
    }


# -- TOML out of Python values ------------------------------------------------------------------
def toml_string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(value)


def toml_document(data: dict[str, Any]) -> str:
    """Top-level keys as ``key = value`` (tables inline): every TOML type, any key."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in data.items())


# -- strategies ---------------------------------------------------------------------------------
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
KEYS = st.one_of(
    st.sampled_from(
        [
            "name",
            "plugin",
            "options",
            "password",
            "points",
            "address",
            "port",
            "listen",
            "env",
            "file",
            "default",
            "levels",
            "retention",
            "server",
        ]
    ),
    TEXT,
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl"]), min_size=1, max_size=3),
)
SCALARS = st.one_of(
    TEXT,
    st.sampled_from(["", "x" * 300, "a\u202eb", "0.0.0.0:0", "127.0.0.1:-1", "../../etc/passwd"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda n: n * 2**64),  # too big
    st.floats(),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)
SECRETS = st.text(string.ascii_letters + string.digits, min_size=6, max_size=10).map(
    lambda s: "Sx" + s + "-pw"
)


@st.composite
def base_config(draw: Any, plugins: ioplex.Plugins) -> dict[str, Any]:
    """A plausible configuration: a host table, instances of the known types (writeOnly
    fields holding the secret, or ``{env = ...}`` naming it), plugin tables and loggers."""
    secret_env = {"env": SECRET_VAR}
    ioservers = {}
    fields = write_only(plugins)
    for i in range(draw(st.integers(0, 3))):
        plugin = draw(st.sampled_from(sorted(plugins.types)))
        table: dict[str, Any] = {
            "plugin": plugin,
            "options": draw(st.dictionaries(KEYS, ANY, max_size=3)),
        }
        for key in fields[plugin]:
            table[key] = draw(st.sampled_from([secret_env, "SECRET-LITERAL"]))
        if draw(st.booleans()):
            table[draw(KEYS)] = secret_env
        ioservers[draw(st.sampled_from([f"io{i}", "a", "A", "x.y"]))] = table
    config: dict[str, Any] = {
        "host": {"name": draw(st.sampled_from(["site", "bad name", ""])), "data_dir": "data"},
        "ioservers": ioservers,
    }
    if draw(st.booleans()):
        config["plugins"] = {
            draw(st.sampled_from(sorted(plugins.info) + ["nope"])): draw(
                st.dictionaries(KEYS, ANY | st.just(secret_env), max_size=3)
            )
        }
    if draw(st.booleans()):
        config["loggers"] = {
            "log": {"points": draw(st.lists(TEXT, max_size=2)), "retention": draw(ANY)}
        }
    return config


@st.composite
def mutated(draw: Any, valid: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    data = draw(valid)

    def mutate(node: Any) -> Any:
        choice = draw(st.integers(0, 9))
        if choice == 0:
            return draw(ANY)
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            node = dict(node)
            if choice == 1:
                del node[key]
            elif choice == 2:
                node[draw(KEYS)] = draw(ANY)
            else:
                node[key] = mutate(node[key])
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            node = [*node[:i], mutate(node[i]), *node[i + 1 :]]
        return node

    for _ in range(draw(st.integers(0, 3))):
        data = mutate(data)
    return data if isinstance(data, dict) else {"x": data}


@st.composite
def documents(draw: Any, plugins: ioplex.Plugins) -> tuple[bytes, str]:
    """(file contents, the secret): mostly valid TOML, sometimes with bytes spliced in."""
    secret = draw(SECRETS)
    text = toml_document(draw(mutated(base_config(plugins)))).replace("SECRET-LITERAL", secret)
    data = text.encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    return data, secret


def check(tmp_path: Path, plugins: ioplex.Plugins, data: bytes, secret: str) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(data)
    try:
        load(path, plugins, environ={SECRET_VAR: secret})
    except ioplex.ConfigError as exc:
        message = str(exc)
        assert exc.problems, message
        for problem in exc.problems:
            # a path in the document, or (unreadable TOML) the file itself
            assert problem.path or exc.source == str(path), message
        assert secret not in message, message
        assert secret not in repr(exc.problems)


@FUZZ
@given(doc=documents(builtin_plugins()))
def test_builtins_only(tmp_path: Path, doc: tuple[bytes, str]) -> None:
    check(tmp_path, builtin_plugins(), *doc)


@FUZZ
@given(doc=documents(all_plugins()))
def test_all_installed_plugins(tmp_path: Path, doc: tuple[bytes, str]) -> None:
    check(tmp_path, all_plugins(), *doc)


@FUZZ
@given(data=st.binary(max_size=300))
def test_raw_bytes(tmp_path: Path, data: bytes) -> None:
    check(tmp_path, all_plugins(), data, "no-secret-here")


@pytest.mark.parametrize(
    "text",
    [
        "a = [" * 5000 + "]" * 5000,  # past the recursion limit of a naive parser
        "a = " + "[" * 400 + "]" * 400,  # parsed, then validated and walked
        "[ioservers.d]\nplugin = 'dummy'\noptions = {points = " + "[" * 900 + "]" * 900 + "}",
        "a = {b = " * 500 + "1" + "}" * 500,
        "a = " + "9" * 5000,  # past Python's int digit limit
        "host = 1\n\x00",
        "\ufeffhost = {name = 'x'}",
    ],
)
def test_extreme_documents(tmp_path: Path, text: str) -> None:
    check(tmp_path, all_plugins(), text.encode("utf-8", "surrogatepass"), "no-secret-here")


# -- what the fuzzing found (regressions) -------------------------------------------------------
def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(b'[host]\nname = "caf\xe9"\n')
    with pytest.raises(ioplex.ConfigError, match=r"not UTF-8 at byte 18 \(line 2\)"):
        load(path, builtin_plugins(), environ={})


def test_an_integer_of_thousands_of_digits_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("a = " + "9" * 5000)
    with pytest.raises(ioplex.ConfigError, match="invalid TOML: Exceeds the limit") as info:
        load(path, builtin_plugins(), environ={})
    assert "set_int_max_str_digits" not in str(info.value)


def test_a_secret_naming_an_unknown_type_is_masked(tmp_path: Path) -> None:
    config = {"ioservers": {"a": {"plugin": {"env": SECRET_VAR}}}}
    with pytest.raises(ioplex.ConfigError) as info:
        load(config, builtin_plugins(), environ={SECRET_VAR: "hunter2"})
    assert str(info.value).startswith("ioservers.a.plugin: unknown I/O server type '***'")
    assert "hunter2" not in str(info.value)
