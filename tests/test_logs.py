"""Log set-up: JSON off a terminal, console on one, quiet, and the standard library routed too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from crawler import logs
from crawler.logs import LogFormat


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test configures logging itself; put structlog and the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestFormat:
    def test_json_when_not_a_terminal(self) -> None:
        """Off a terminal, each event is one JSON object a line: timestamp, level and event first."""
        stream = io.StringIO()
        assert logs.configure(stream=stream) is LogFormat.JSON
        logs.get_logger().info("run started", run_id="r1", claims=3)
        [line] = _lines(stream)
        assert list(line)[:3] == ["timestamp", "level", "event"]
        assert line["event"] == "run started"
        assert line["level"] == "info"
        assert (line["run_id"], line["claims"]) == ("r1", 3)
        assert str(line["timestamp"]).endswith("Z")

    def test_console_on_a_terminal(self) -> None:
        """On a terminal the lines are for people, not JSON."""
        stream = _Terminal()
        assert logs.configure(stream=stream) is LogFormat.CONSOLE
        logs.get_logger().info("run started", claims=3)
        text = stream.getvalue()
        assert "run started" in text
        assert "claims" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text.splitlines()[0])

    @pytest.mark.parametrize(
        ("requested", "expected"), [("json", LogFormat.JSON), ("console", LogFormat.CONSOLE)]
    )
    def test_requested_format_wins(self, requested: str, expected: LogFormat) -> None:
        """--log-format overrides the terminal test either way."""
        assert logs.configure(format=requested, stream=_Terminal()) is expected
        assert logs.configure(format=requested, stream=io.StringIO()) is expected

    def test_unknown_format_is_refused(self) -> None:
        """A format that does not exist is an error, not a silent default."""
        with pytest.raises(ValueError, match="xml"):
            logs.configure(format="xml", stream=io.StringIO())


class TestLevels:
    def test_debug_is_dropped_and_info_kept(self) -> None:
        """Per-request debug lines stay out of the default output; info lines show."""
        stream = io.StringIO()
        logs.configure(stream=stream)
        logs.get_logger().debug("request", url="http://127.0.0.2/")
        logs.get_logger().info("run finished")
        assert [line["event"] for line in _lines(stream)] == ["run finished"]

    def test_quiet_keeps_warnings_only(self) -> None:
        """--quiet drops info lines and keeps warnings and errors."""
        stream = io.StringIO()
        logs.configure(quiet=True, stream=stream)
        logs.get_logger().info("run started")
        logs.get_logger().warning("slow host", host="127.0.0.2")
        logs.get_logger().error("database locked")
        assert [line["level"] for line in _lines(stream)] == ["warning", "error"]


class TestStandardLogging:
    def test_library_warnings_use_the_same_format(self) -> None:
        """A warning logged through `logging` (as aiohttp and asyncio do) comes out as the same JSON."""
        stream = io.StringIO()
        logs.configure(stream=stream)
        logging.getLogger("aiohttp.client").warning("Unclosed %s", "connector")
        logging.getLogger("aiohttp.access").info("GET / 200")
        [line] = _lines(stream)
        assert (line["event"], line["level"]) == ("Unclosed connector", "warning")

    def test_exceptions_are_rendered_into_the_line(self) -> None:
        """An exception logged with its traceback stays one JSON line."""
        stream = io.StringIO()
        logs.configure(stream=stream)
        try:
            raise RuntimeError("disk full")
        except RuntimeError:
            logs.get_logger().exception("save failed")
        [line] = _lines(stream)
        assert "RuntimeError: disk full" in str(line["exception"])
