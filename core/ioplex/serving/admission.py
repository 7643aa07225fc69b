"""Admission control: who gets a connection slot, for how long before logging in, and how
much a connection may make the server write.

An unauthenticated connection costs the server a socket, a task and buffers while offering
nothing, so the server bounds them: at most `max_unauthenticated` per client prefix (an IPv4
address, an IPv6 /64) and `max_connections` in all. When a new connection would pass a cap,
the **oldest unauthenticated** connection over that cap is closed to make room, rather than
the newcomer refused: a flood of idle connections from one address then cannot lock out a
good client from the same address, which logs in well before it becomes the oldest. Only when
every slot is held by authenticated sessions is a newcomer refused.

Each admitted connection runs in its ticket's cancel scope, whose deadline is the **absolute**
login deadline (bytes received do not extend it); `Ticket.authenticated()` lifts it. Servers
whose connections are protocol callbacks rather than tasks (uvicorn) pass a `close` callback
to `admit` and call `Ticket.expire` from a timer instead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import anyio

from .allow import client_prefix


class OutputBudgetExceeded(Exception):
    """A connection asked the server to write more than its budget allows."""


@dataclass
class OutputBudget:
    """Bytes a connection may make the server write before it has logged in.

    A pre-login command that answers with more than it reads (HELP turns 5 bytes into a
    kilobyte) must not let a client that never reads its answers grow the server's memory:
    past the budget the connection is closed and nothing more is queued.
    """

    limit: int
    used: int = 0

    def spend(self, size: int) -> None:
        """Count `size` bytes about to be written; OutputBudgetExceeded past the limit."""
        self.used += size
        if self.used > self.limit:
            raise OutputBudgetExceeded(
                f"wrote {self.used} bytes before logging in (limit {self.limit})"
            )


@dataclass(eq=False)
class Ticket:
    """One admitted connection. Use as a context manager around the connection's life and
    run the connection inside `scope` (a task-per-connection server), or give `admit` a
    `close` callback and call `expire` at the login deadline (a server whose connections are
    protocol callbacks, such as uvicorn's)."""

    admission: Admission
    client: str
    prefix: str
    budget: OutputBudget
    deadline: float
    """When the login deadline falls, on `Admission`'s clock."""
    close: Callable[[], None] | None = None
    """Called when the connection is evicted or its login deadline passes."""
    is_authenticated: bool = False
    evicted: bool = False
    expired: bool = False
    _scope: anyio.CancelScope | None = None

    @property
    def scope(self) -> anyio.CancelScope:
        """A cancel scope with the login deadline, cancelled on eviction (made on first use,
        from within the connection's task)."""
        if self._scope is None:
            deadline = float("inf") if self.is_authenticated else self.deadline
            self._scope = anyio.CancelScope(deadline=deadline)
            if self.evicted:
                self._scope.cancel()
        return self._scope

    def authenticated(self) -> None:
        """The client logged in: no login deadline, no pre-login budget, never evicted."""
        if not self.is_authenticated:
            self.is_authenticated = True
            if self._scope is not None:
                self._scope.deadline = float("inf")
            self.budget.limit = 1 << 62
            self.admission._authenticated(self)

    def expire(self) -> None:
        """The login deadline passed (for servers that time it themselves): close the
        connection unless it logged in meanwhile."""
        if not self.is_authenticated and not self.evicted:
            self.expired = True
            self.admission.timed_out += 1
            self.admission._evict(self, count=False)

    def release(self) -> None:
        """The connection ended: its slot is free (what leaving the `with` does)."""
        self.admission._release(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def timed_out(self) -> bool:
        """Whether the login deadline closed the connection (not an eviction)."""
        if self.expired:
            return True
        scope = self._scope
        return (
            scope is not None
            and scope.cancel_called
            and not self.evicted
            and not self.is_authenticated
        )


class Admission:
    """Connection slots for one server (see the module docstring).

    ::

        ticket = admission.admit(ip)
        if ticket is None:            # every slot is held by logged-in sessions
            refuse(); return
        with ticket, ticket.scope:    # closed at the login deadline or when evicted
            ... ticket.authenticated() once the password is right ...
    """

    def __init__(
        self,
        *,
        max_connections: int = 256,
        max_unauthenticated: int = 8,
        login_deadline: float = 10.0,
        output_budget: int = 16 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.max_unauthenticated = max_unauthenticated
        self.login_deadline = login_deadline
        self.output_budget = output_budget
        self._clock = clock
        self._all: set[Ticket] = set()
        # Unauthenticated tickets, oldest first: overall and per prefix.
        self._waiting: OrderedDict[Ticket, None] = OrderedDict()
        self._by_prefix: dict[str, OrderedDict[Ticket, None]] = {}
        self.refused = 0
        """Connections refused because every slot was held by logged-in sessions."""
        self.evicted = 0
        """Unauthenticated connections closed to make room for newer ones."""
        self.timed_out = 0
        """Connections closed by `Ticket.expire` at their login deadline."""

    @property
    def connections(self) -> int:
        return len(self._all)

    @property
    def unauthenticated(self) -> int:
        return len(self._waiting)

    def admit(self, client: str | None, close: Callable[[], None] | None = None) -> Ticket | None:
        """A ticket for a new connection from `client`, or None when it must be refused.

        `close`, when given, is called to close the connection if it is evicted or (through
        `Ticket.expire`) passes its login deadline. Call from the event loop's thread.
        """
        prefix = client_prefix(client)
        same = self._by_prefix.get(prefix)
        if same is not None and len(same) >= self.max_unauthenticated:
            self._evict(next(iter(same)))
        if len(self._all) >= self.max_connections:
            if not self._waiting:
                self.refused += 1
                return None
            self._evict(next(iter(self._waiting)))
        ticket = Ticket(
            self,
            client or "?",
            prefix,
            OutputBudget(self.output_budget),
            self._clock() + self.login_deadline,
            close,
        )
        self._all.add(ticket)
        self._waiting[ticket] = None
        self._by_prefix.setdefault(prefix, OrderedDict())[ticket] = None
        return ticket

    def _evict(self, ticket: Ticket, count: bool = True) -> None:
        if ticket.evicted:
            return
        ticket.evicted = True
        if count:
            self.evicted += 1
        self._all.discard(ticket)  # its slot is free now, even before its task ends
        self._forget_waiting(ticket)
        if ticket._scope is not None:
            ticket._scope.cancel()
        if ticket.close is not None:
            ticket.close()

    def _forget_waiting(self, ticket: Ticket) -> None:
        if self._waiting.pop(ticket, 0) is None:
            same = self._by_prefix[ticket.prefix]
            del same[ticket]
            if not same:
                del self._by_prefix[ticket.prefix]

    def _authenticated(self, ticket: Ticket) -> None:
        self._forget_waiting(ticket)

    def _release(self, ticket: Ticket) -> None:
        self._all.discard(ticket)
        self._forget_waiting(ticket)
