"""Topic names on the broker, and the ``subscribe`` patterns that choose what to mirror.

Layout under a prefix (default ``ioplex``), for the point ``dummy.light.1`` of host
``site-a``::

    ioplex/site-a/$state                  online | offline (retained; offline is the last will)
    ioplex/site-a/dummy/light/1           the point's state (retained JSON, payload.py)
    ioplex/site-a/$set/dummy/light/1      a write request to the owning host
    ioplex/site-a/$result/dummy/light/1   the owner's answer

The dots of a point name become topic levels: that is what MQTT users expect, and NATS's MQTT
listener refuses dots in topics (they are its subject separator). Requests and answers live
under reserved levels (``$set``, ``$result``) rather than behind the point, so a point whose
last segment is ``set`` is not mistaken for a request. A name with a segment holding ``/``,
an MQTT wildcard (``+``, ``#``) or starting with ``$`` cannot be written as topic levels
and is not published (counted).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ioplex.points import check_pattern

LIVENESS = "$state"
REQUESTS = "$set"
RESULTS = "$result"
ONLINE = b"online"
OFFLINE = b"offline"
_GLOB = re.compile(r"[*?\[]")
_NOT_A_LEVEL = re.compile(r"[+#/\x00]")
_LEVEL = re.compile(r"[^/+#.\x00$][^/+#.\x00]*")
"""One topic level of ours (`is_level`), as one regular expression."""
_LEVELS = re.compile(r"[^/+#.\x00$][^/+#.\x00]*(?:/[^/+#.\x00$][^/+#.\x00]*)*")

STATE, LIVE, SET, RESULT = "state", "live", "set", "result"


def check_prefix(prefix: str) -> str | None:
    """What is wrong with a topic prefix, or None."""
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        return "must be non-empty topic levels joined by single '/'"
    if _NOT_A_LEVEL.sub("", prefix.replace("/", "")) != prefix.replace("/", ""):
        return "must not contain the MQTT wildcards '+' or '#' or NUL"
    if prefix.startswith("$"):
        return "must not start with '$' (reserved for the broker's own topics)"
    return None


def check_id(text: str) -> str | None:
    """What is wrong with a Sparkplug group, edge node or host id (one topic level), or
    None."""
    if not text:
        return "must not be empty"
    if any(c in text for c in "/+#\0"):
        return "must not contain '/', '+', '#' or NUL (it is one MQTT topic level)"
    return None


def is_level(text: str) -> bool:
    """Whether `text` can be one topic level of ours (a host name, a point name's segment)."""
    return (
        bool(text)
        and not text.startswith("$")
        and "." not in text
        and _NOT_A_LEVEL.search(text) is None
    )


def publishable(name: str) -> bool:
    """Whether a point name can be written as topic levels (see the module's docstring)."""
    return all(is_level(segment) for segment in name.split("."))


class Topics:
    """The topic names of one prefix."""

    def __init__(self, prefix: str, cache: int = 0) -> None:
        """`cache`: parsed topics remembered (a topic is parsed again at each change of its
        point otherwise); the memory is cleared when full, so invented topics cannot grow it."""
        self.prefix = prefix
        self._start = prefix + "/"
        self._skip = len(self._start)
        self._cache_size = cache
        self._parsed: dict[str, tuple[str, str, str] | None] = {}

    def state(self, host: str, name: str) -> str:
        return f"{self._start}{host}/{name.replace('.', '/')}"

    def liveness(self, host: str) -> str:
        return f"{self._start}{host}/{LIVENESS}"

    def set(self, host: str, name: str) -> str:
        return f"{self._start}{host}/{REQUESTS}/{name.replace('.', '/')}"

    def result(self, host: str, name: str) -> str:
        return f"{self._start}{host}/{RESULTS}/{name.replace('.', '/')}"

    def host_filter(self, host: str) -> str:
        """Everything of `host` (``+``: every host)."""
        return f"{self._start}{host}/#"

    def requests_filter(self, host: str) -> str:
        """Write requests to `host`'s points."""
        return f"{self._start}{host}/{REQUESTS}/#"

    def parse_cached(self, topic: str) -> tuple[str, str, str] | None:
        """`parse`, remembering up to `cache` topics."""
        try:
            return self._parsed[topic]
        except KeyError:
            pass
        parsed = self.parse(topic)
        if len(self._parsed) >= self._cache_size:
            self._parsed.clear()
        self._parsed[topic] = parsed
        return parsed

    def parse(self, topic: str) -> tuple[str, str, str] | None:
        """``(kind, host, point name)`` of one of our topics, or None for anything else."""
        if not topic.startswith(self._start):
            return None
        host, slash, rest = topic[self._skip :].partition("/")
        if not slash or _LEVEL.fullmatch(host) is None:
            return None
        if rest == LIVENESS:
            return LIVE, host, ""
        kind = STATE
        if rest.startswith("$"):
            first, slash, rest = rest.partition("/")
            if first == REQUESTS:
                kind = SET
            elif first == RESULTS:
                kind = RESULT
            else:
                return None
        if _LEVELS.fullmatch(rest) is None:
            return None
        return kind, host, rest.replace("/", ".")


@dataclass(frozen=True, slots=True)
class MirrorRule:
    """One ``subscribe`` entry, ``<host glob>/<point glob>``."""

    host: str
    points: str

    @property
    def host_is_glob(self) -> bool:
        return _GLOB.search(self.host) is not None


def parse_rules(entries: Sequence[str], where: str) -> list[MirrorRule]:
    """The ``subscribe`` option; ValueError naming the entry when one is malformed."""
    rules = []
    for i, entry in enumerate(entries):
        host, slash, points = entry.partition("/")
        if not slash or not host or not points or "/" in points:
            raise ValueError(
                f"{where}[{i}]: {entry!r} is not '<host>/<point pattern>' "
                "(e.g. 'site-b/*' for every point of host site-b)"
            )
        if not is_level(host.replace("*", "x").replace("?", "x")):
            raise ValueError(
                f"{where}[{i}]: host part {host!r} cannot hold '+', '#' or start with '$'"
            )
        try:
            check_pattern(host)
            check_pattern(points)
        except ValueError as exc:
            raise ValueError(f"{where}[{i}]: {exc}") from None
        rules.append(MirrorRule(host, points))
    return rules


class Mirrors:
    """Which remote (host, point) pairs the ``subscribe`` rules select."""

    def __init__(self, rules: list[MirrorRule], topics: Topics) -> None:
        self.rules = rules
        self._match = [
            (
                re.compile(fnmatch.translate(r.host)).match,
                re.compile(fnmatch.translate(r.points)).match,
            )
            for r in rules
        ]
        self._hosts = (
            re.compile("|".join(fnmatch.translate(r.host) for r in rules)).match if rules else None
        )
        filters = {topics.host_filter("+" if r.host_is_glob else r.host) for r in rules}
        if topics.host_filter("+") in filters:
            filters = {topics.host_filter("+")}
        self.filters = sorted(filters)
        self._everything = any(r.host == "*" and r.points == "*" for r in rules)

    def host(self, host: str) -> bool:
        if self._everything:
            return True
        return self._hosts is not None and self._hosts(host) is not None

    def point(self, host: str, name: str) -> bool:
        if self._everything:
            return True
        return any(h(host) and p(name) for h, p in self._match)
