"""`python -m crawler`, and the entry point of the `crawler` command.

SIGTERM stops the command as Ctrl-C does (exit code 130) from its first instant: the handler is
installed before the program's modules are imported, which takes a third of a second, so a
container stopped just after it started exits as a stopped run does, not with 143.
"""

from __future__ import annotations

import signal

EXIT_INTERRUPTED = 130


def main() -> int:
    """Run the command line; returns the exit code."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from crawler.cli import main as command_line  # here: after the handler, on purpose
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return command_line()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
