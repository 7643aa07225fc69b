"""The server toolkit: what every ioplex plugin that accepts connections needs, written once.

A plugin that runs a server (vscp_link's link server, hsyco_remote's HTTPS server, the web
plugin, a third-party one) builds on these instead of writing its own:

- `parse_listen` / `format_listen` / `bind_tcp`: ``host:port`` settings and their sockets;
- `AllowList`: which client addresses may connect (addresses, networks, ``*``);
- `AuthThrottle`: password guessing slowed per network prefix, with a global cap, without
  holding connections and without locking out sessions that already logged in;
- `Admission`: caps on unauthenticated and total connections, an absolute login deadline and
  a pre-login output budget;
- `serve_tcp` / `accept_sockets`: accept loops (anyio streams / raw sockets) that wait out
  EMFILE/ENFILE instead of dying or flooding the log;
- `RateLimitedLog`, `RateLimitFilter`: one log line per kind of event per interval, for our
  messages and for other libraries' loggers;
- `RemoteWrites`: the ``control`` policy for remote writes, with sensitive points;
- `HeadMeter`: HTTP request heads bounded however they arrive;
- `jsontext`: JSON out (non-finite floats as strings) and in (nesting limit);
- `write_status`: the HTTP status and error code of a failed write;
- `InfoFile`: where a running server says how to reach it, never a reason not to serve.

docs/serving.md describes the guarantees they give and how to use them.
"""

from . import jsontext
from .accept import accept_sockets, serve_tcp
from .admission import Admission, OutputBudget, OutputBudgetExceeded, Ticket
from .allow import AllowList, client_prefix, parse_address
from .heads import HeadMeter
from .infofile import InfoFile
from .limits import raise_open_file_limit
from .listen import bind_tcp, format_listen, parse_listen
from .ratelog import RateLimitedLog, RateLimitFilter, quiet_loggers
from .statuses import write_status
from .throttle import AuthThrottle
from .writes import RemoteWrites

__all__ = [
    "Admission",
    "AllowList",
    "AuthThrottle",
    "HeadMeter",
    "InfoFile",
    "OutputBudget",
    "OutputBudgetExceeded",
    "RateLimitFilter",
    "RateLimitedLog",
    "RemoteWrites",
    "Ticket",
    "accept_sockets",
    "bind_tcp",
    "client_prefix",
    "format_listen",
    "jsontext",
    "parse_address",
    "parse_listen",
    "quiet_loggers",
    "raise_open_file_limit",
    "serve_tcp",
    "write_status",
]
