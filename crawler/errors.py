"""The crawler's own failures: one base class, caught once at the command line's edge.

A page that fails to load is not an exception: it is a `Result` with a `reason`. These are
failures of the job itself, each of which the command reports in one line with exit code 2::

    CrawlerError
    ├── ConfigError       a setting that is unknown or has a bad value (also a ValueError)
    ├── ClaimError        a claim built with a bad field (also a ValueError); a bad input row
    │                     becomes an `invalid` result instead
    ├── InputError        a claims file that can't be opened or read
    ├── StoreError        a database that can't be opened, read or written
    │   ├── RunHeldError  the database's run is held by another live process
    │   └── UnknownClaimError  no claim with the id asked for (`history`, `evidence`)
    ├── OutputError       an `--output` or `--events` stream that can't be written (also an OSError)
    ├── ArchiveError      the evidence archive can't be written
    └── RenderError       rendering is on but the browser or the `render` extra is missing
"""

from __future__ import annotations


class CrawlerError(Exception):
    """Base class of every failure of the crawler's own job."""


class ConfigError(CrawlerError, ValueError):
    """A setting that is unknown or has a bad value; the message names it."""


class ClaimError(CrawlerError, ValueError):
    """A claim that cannot be checked: names the field and the problem."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


class InputError(CrawlerError):
    """A claims file that can't be opened or read (a bad row is an `invalid` result instead)."""


class StoreError(CrawlerError):
    """A database that can't be opened, read or written; the message names the path and the cause."""


class RunHeldError(StoreError):
    """The database's run is held by another live process (pid, host and start time in the message)."""


class UnknownClaimError(StoreError):
    """No claim in the database has the id asked for; the message names it and the database."""


class OutputError(CrawlerError, OSError):
    """An output stream (`--output`, `--events`) that can't be written: the run stops, resumable."""


class ArchiveError(CrawlerError):
    """The evidence archive can't be written (or a record read): the run stops rather than drop
    evidence. `path` is the file or directory, `cause` what went wrong."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"archive {path}: {cause}")
        self.path = path
        self.cause = cause


class RenderError(CrawlerError):
    """Rendering is on, but the browser or the `render` extra is missing; names what and where."""
