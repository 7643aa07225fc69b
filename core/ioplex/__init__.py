"""ioplex: a plugin-based host for building-automation I/O servers.

The public API, for plugins, tests and embedding applications::

    import ioplex

    host = ioplex.Host.from_config("site.toml")
    async with host:
        await host.write("dummy.light.1", 1)
"""

from .config import Config, IOServerConfig
from .errors import (
    ConfigError,
    FatalError,
    IoplexError,
    PointError,
    PointNameError,
    PointTypeError,
    Problem,
    ReadOnlyPointError,
    Refused,
    UnknownPointError,
    WriteError,
)
from .hookspecs import hookimpl, hookspec
from .host import Host
from .ioserver import IOServer
from .loggers import (
    DataLogger,
    DataLoggers,
    Interval,
    ReplicatedRows,
    Sample,
    UnknownLoggerError,
)
from .plugins import IOServerType, PluginInfo, Plugins, load_plugins, load_schema
from .points import Point, PointEvent, Quality, Value
from .polling import DeviceError, Poller
from .registry import Listener, Registry, Subscription
from .supervisor import Backoff, State
from .views import UnknownViewError, View, ViewError, ViewParamError, Views

__all__ = [
    "Backoff",
    "Config",
    "ConfigError",
    "DataLogger",
    "DataLoggers",
    "DeviceError",
    "FatalError",
    "Host",
    "IOServer",
    "IOServerConfig",
    "IOServerType",
    "Interval",
    "IoplexError",
    "Listener",
    "PluginInfo",
    "Plugins",
    "Point",
    "PointError",
    "PointEvent",
    "PointNameError",
    "PointTypeError",
    "Poller",
    "Problem",
    "Quality",
    "ReadOnlyPointError",
    "Refused",
    "Registry",
    "ReplicatedRows",
    "Sample",
    "State",
    "Subscription",
    "UnknownLoggerError",
    "UnknownPointError",
    "UnknownViewError",
    "Value",
    "View",
    "ViewError",
    "ViewParamError",
    "Views",
    "WriteError",
    "hookimpl",
    "hookspec",
    "load_plugins",
    "load_schema",
]
