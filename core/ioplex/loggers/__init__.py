"""Data loggers: named series of point values recorded in SQLite, consolidated per minute,
hour, day and month, expired per level, queryable while the host runs, and fed either by local
points or by replication from another host. docs/loggers.md describes the configuration and
the database.
"""

from ..config import LOGGER_VALIDATORS
from .calendar import Calendar
from .logger import DataLogger
from .reader import DatabaseMissing, Reader
from .replication import Feed, ReplicatedRows, ReplicationError
from .rows import Interval, Sample, TariffInterval
from .service import DataLoggers, UnknownLoggerError
from .settings import KINDS, LEVELS, LoggerSettings, check_loggers, parse_duration
from .store import DATABASE

if check_loggers not in LOGGER_VALIDATORS:
    LOGGER_VALIDATORS.append(check_loggers)

__all__ = [
    "DATABASE",
    "KINDS",
    "LEVELS",
    "Calendar",
    "DataLogger",
    "DataLoggers",
    "DatabaseMissing",
    "Feed",
    "Interval",
    "LoggerSettings",
    "Reader",
    "ReplicatedRows",
    "ReplicationError",
    "Sample",
    "TariffInterval",
    "UnknownLoggerError",
    "parse_duration",
]
