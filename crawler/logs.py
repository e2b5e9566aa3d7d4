"""Logging set up once for the command line: structlog, always on standard error.

JSON lines when standard error is not a terminal (a container, a CI job, a pipe), aligned
console lines on one. Standard output stays free for results. Records of the standard
`logging` module (aiohttp, asyncio) go through the same renderer, so a log collector sees
one format.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor


class LogFormat(StrEnum):
    """How log lines look: `json` for machines, `console` for people."""

    JSON = "json"
    CONSOLE = "console"


class _StderrLogger:
    """Writes each rendered line to the `sys.stderr` of the moment of writing.

    Looked up per line rather than captured, so that a progress bar that redirects standard
    error while it is drawn prints log lines above itself instead of through itself.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = error = critical = exception = log = msg


def choose_format(requested: str | None, stream: TextIO) -> LogFormat:
    """The requested format, else console on a terminal and JSON anywhere else."""
    if requested:
        return LogFormat(requested)
    return LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON


def configure(*, format: str | None = None, quiet: bool = False, stream: TextIO | None = None) -> LogFormat:
    """Configure structlog and `logging` once; returns the format chosen.

    `quiet` keeps warnings and errors only. `stream` defaults to standard error.
    """
    chosen = choose_format(format, stream or sys.stderr)
    level = logging.WARNING if quiet else logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering = _rendering(chosen, (stream or sys.stderr).isatty())
    global _configured_level  # one process-wide setting, as structlog's own
    _configured_level = level
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *args: _StderrLogger(stream),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(shared, rendering, level, stream)
    return chosen


def _rendering(chosen: LogFormat, colors: bool) -> list[Processor]:
    """The last processors of every chain: the one that renders and what it needs before it."""
    if chosen is LogFormat.JSON:
        return [_time_level_event_first, structlog.processors.JSONRenderer()]
    return [structlog.dev.ConsoleRenderer(colors=colors)]


def _time_level_event_first(logger: Any, name: str, event: EventDict) -> EventDict:
    """Puts timestamp, level and event first in each JSON line, where a reader looks."""
    head: EventDict = {key: event.pop(key) for key in ("timestamp", "level", "event") if key in event}
    head.update(event)
    return head


def _route_standard_logging(
    shared: list[Processor], rendering: list[Processor], level: int, stream: TextIO | None
) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = _CurrentStderrHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Other libraries' informational chatter is not ours to show; their warnings are.
    root.setLevel(max(level, logging.WARNING))


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler bound to standard error as it is when a record is emitted."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stderr
        super().emit(record)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# The level `configure` filtered structlog at: lines below it are dropped before structlog is
# asked (a proxy and a bound logger per call, for every request's debug line). Unset (0) when an
# application configured structlog itself, whose own filter then decides.
_configured_level = 0


class LibraryLogger:
    """The logger of the modules a library user runs (engine, pipeline).

    Once the application configured structlog (the command line does), lines go through it.
    Before that, they go to the standard `logging` logger of the same name, so `import
    crawler` prints nothing a user did not ask for: structlog's unconfigured default would
    print every debug line to standard output.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._standard = logging.getLogger(name)

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log("error", event, {"exc_info": True, **fields})

    def _log(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            if _LEVELS[level] < _configured_level:
                return
            getattr(structlog.get_logger(self.name), level)(event, **fields)
        elif self._standard.isEnabledFor(_LEVELS[level]):
            exc_info = fields.pop("exc_info", None)
            details = " ".join(f"{key}={value!r}" for key, value in fields.items())
            self._standard.log(_LEVELS[level], "%s %s", event, details, exc_info=exc_info)


def get_logger(name: str = "crawler") -> LibraryLogger:
    """The logger for module `name` (pass `__name__`)."""
    return LibraryLogger(name)
