"""`python -m crawler`, and the entry point of the `crawler` command.

SIGTERM and SIGHUP (the terminal closed) stop the command as Ctrl-C does (exit code 130) from
its first instant. While the program's modules are imported (a third of a second) they are only
noted, and acted on once they are: an exception raised in the middle of an import can come out
as another one (a RuntimeError from a class being built), or not at all. So a container stopped
just after it started exits as a stopped run does, not with 143.

Once the command has returned, these signals and SIGINT are ignored: the interpreter's shutdown
(joining the page readers, finalising modules) puts Python's handlers back to the system default
first, so a second SIGTERM a moment after the first ended the process with 143 instead of the
run's own exit code.
"""

from __future__ import annotations

import signal

EXIT_INTERRUPTED = 130
# SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def main() -> int:
    """Run the command line; returns the exit code."""
    stopped: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stopped.append(signum))
    from crawler.app.cli import main as command_line  # here: after the handlers, on purpose

    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.default_int_handler)  # from now on: KeyboardInterrupt
    code = EXIT_INTERRUPTED if stopped else command_line()
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)  # the work is over: exit with its code, whatever comes
    return code


if __name__ == "__main__":
    raise SystemExit(main())
