"""The `crawler` command: verify, export, report, demo and settings.

A thin layer over the library: arguments, environment and config file to `Settings`; claims
files into the store; `pipeline.verify` in a task that SIGINT and SIGTERM cancel; results to
the store and, with `--output`, to a JSON Lines stream as they are decided. Exit codes:

    0    the run finished
    1    the run finished and a result's status is one of `--fail-on`
    2    usage, configuration, an input file or database that can't be read, an unwritable --output
    70   an internal error (a bug: the traceback is on standard error)
    130  interrupted: what was decided is saved, and the next `verify` resumes the run
    141  the reader of standard output went away (`crawler export | head`), as a shell reports it
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from crawler import config, logs
from crawler.app import display
from crawler.app.export import ExportFormat, csv_header, csv_row, json_line
from crawler.app.inputs import FORMATS, read_claims
from crawler.app.run import RunOutcome, run_async, verify_run
from crawler.config import SPECS, Kind, RenderMode, Settings, SettingSpec, __version__
from crawler.engine import render
from crawler.errors import ConfigError, CrawlerError
from crawler.models import Reason, Result, Status
from crawler.store.base import Report, RunInfo
from crawler.store.sqlite import Store

if TYPE_CHECKING:
    from crawler.app.demo import DemoSite

log = structlog.get_logger()

EXIT_OK, EXIT_FAIL_ON, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 70, 130, 141
DEFAULT_DB = "crawler.sqlite"
DEMO_DB = "demo.sqlite"
# Mapping settings are given one item per flag, like curl's --header and --resolve.
_ITEM_FLAGS = {"headers": ("--header", "--headers"), "resolve": ("--resolve",)}


class UsageError(CrawlerError):
    """A command that can't run as written; the message says why (exit 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code. (`crawler.__main__` makes SIGTERM and SIGHUP
    stop it as Ctrl-C does until a run installs its own handlers.)"""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words:  # a bare `crawler`: what it can do, not an error
        parser.print_help()
        return EXIT_OK
    try:
        args = parser.parse_args(_command_first(words))
        return int(args.handler(args))
    except CrawlerError as error:
        print(f"crawler: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run handles its own signals)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Point stdout at nothing, so flushing it again at exit can't fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception:
        traceback.print_exc()
        return EXIT_BUG


# Parser --------------------------------------------------------------------------------

# Options every command takes, accepted before the command too (`crawler --db x report`).
_GLOBAL_OPTIONS = {"--db": True, "--config": True, "--log-format": True, "-q": False, "--quiet": False}
COMMANDS = (
    "verify",
    "export",
    "report",
    "runs",
    "changes",
    "history",
    "evidence",
    "worker",
    "demo",
    "settings",
)


def _command_first(words: list[str]) -> list[str]:
    """`words` with the global options written before the command moved after it."""
    moved: list[str] = []
    at = 0
    while at < len(words) and words[at] not in COMMANDS:
        name = words[at].split("=", 1)[0]
        if name not in _GLOBAL_OPTIONS:
            return words  # argparse says what is wrong
        takes_value = _GLOBAL_OPTIONS[name] and "=" not in words[at]
        moved += words[at : at + 1 + takes_value]
        at += 1 + takes_value
    if at == len(words) or not moved:
        return words
    return [words[at], *moved, *words[at + 1 :]]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, its setting flags generated from `Settings`."""
    parser = argparse.ArgumentParser(prog="crawler", description="Verify claimed backlinks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    common, settings, database = _log_options(), _setting_options(), _db_option(DEFAULT_DB)
    verify = commands.add_parser(
        "verify", parents=[common, database, settings], help="verify claims: import files, fetch, decide"
    )
    _verify_options(verify)
    export = commands.add_parser("export", parents=[common, database], help="print a run's results")
    export.add_argument("--format", choices=[f.value for f in ExportFormat], default="csv")
    _run_selection(export)
    export.add_argument("--status", help="only these statuses, comma-separated")
    export.set_defaults(handler=export_command)
    report = commands.add_parser("report", parents=[common, database], help="summarise a run")
    report.add_argument("--format", choices=["table", "json"], default="table")
    _run_selection(report)
    report.set_defaults(handler=report_command)
    runs = commands.add_parser("runs", parents=[common, database], help="list every run, newest first")
    runs.add_argument("--format", choices=["table", "jsonl"], default="table")
    runs.set_defaults(handler=runs_command)
    demo_parser = commands.add_parser(
        "demo", parents=[common, _db_option(DEMO_DB)], help="verify the bundled claims against a demo site"
    )
    demo_parser.set_defaults(handler=demo_command)
    shown = commands.add_parser("settings", parents=[settings], help="print the effective settings as TOML")
    shown.set_defaults(handler=settings_command)
    return parser


def _verify_options(verify: argparse.ArgumentParser) -> None:
    add = verify.add_argument
    add("inputs", nargs="*", metavar="INPUT", help="claims files (.csv, .tsv, .jsonl; - is stdin)")
    add("--format", choices=FORMATS, help="format of the inputs (default: by suffix, else sniffed)")
    add("--output", metavar="PATH", help="also write each result as a JSON line here (- is stdout)")
    add("--fresh", action="store_true", help="start a new run even if the last one was interrupted")
    add("--fail-on", metavar="STATUSES", default="", help="exit 1 if a result has one of these statuses")
    verify.set_defaults(handler=verify_command)


def _log_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress")
    parent.add_argument(
        "--log-format",
        choices=[f.value for f in logs.LogFormat],
        default=config.env_option("CRAWLER_LOG_FORMAT"),
        help="log lines as JSON or for a console (default: console on a terminal, else JSON)",
    )
    return parent


def _db_option(default: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db",
        metavar="PATH",
        default=config.env_option("CRAWLER_DB") or default,
        help=f"SQLite database (default: {default})",
    )
    return parent


def _run_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", default="latest", metavar="latest|ID", help="which run (default: latest)")


def _setting_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (also CRAWLER_<SETTING> variables, or a --config file)")
    group.add_argument("--config", metavar="FILE", help="TOML settings file (default: $CRAWLER_CONFIG)")
    for spec in SPECS:
        _add_setting_flag(group, spec)
    return parent


def _add_setting_flag(group: argparse._ArgumentGroup, spec: SettingSpec) -> None:
    common: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS}
    if spec.kind is Kind.BOOL:
        help = f"{spec.help} (default: {'on' if spec.default else 'off'})"
        group.add_argument(spec.flag, action=argparse.BooleanOptionalAction, help=help, **common)
    elif spec.kind is Kind.MAPPING:
        help = f"{spec.help}; comma-separated, repeatable"
        group.add_argument(
            *_ITEM_FLAGS[spec.name], action="append", metavar=spec.item_form, help=help, **common
        )
    else:
        listed = "; comma-separated" if spec.kind is Kind.LIST else ""
        help = f"{spec.help}{listed} (default: {spec.default_text})"
        metavar = "|".join(spec.choices) or spec.name.upper()
        group.add_argument(spec.flag, metavar=metavar, help=help, **common)


# Shared steps ---------------------------------------------------------------------------


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from defaults < config file < environment < flags (see `config.load_settings`)."""
    flags = {spec.name: getattr(args, spec.name) for spec in SPECS if hasattr(args, spec.name)}
    return config.load_settings(args.config or config.env_option(config.ENV_CONFIG), flags=flags)


def _configure_logs(args: argparse.Namespace) -> logs.LogFormat:
    if args.log_format not in (None, *logs.LogFormat):  # argparse checked the flag, not the variable
        choices = " or ".join(logs.LogFormat)
        raise ConfigError(
            f"environment variable CRAWLER_LOG_FORMAT: expected {choices}, got {args.log_format!r}"
        )
    return logs.configure(format=args.log_format, quiet=args.quiet)


def _statuses(text: str | None, option: str) -> frozenset[Status]:
    words = [word.strip().lower() for word in (text or "").split(",") if word.strip()]
    try:
        return frozenset(Status(word) for word in words)
    except ValueError:
        allowed = ", ".join(status.value for status in Status)
        raise UsageError(f"{option}: {text!r} is not a list of statuses ({allowed})") from None


def _existing_db(path: str) -> Path:
    """The database at `path`; a command that reads results must not create an empty one."""
    db = Path(path)
    if not db.is_file():
        raise UsageError(f"{path}: no such database")
    return db


def _new_or_existing_db(path: str) -> Path:
    """The database at `path`, which a run may create: its directory must exist."""
    db = Path(path)
    if not db.parent.is_dir():
        raise UsageError(f"{path}: cannot create the database: no directory {db.parent}")
    return db


def _utf8(stream: TextIO) -> TextIO:
    """Standard output for results: UTF-8 whatever the locale says."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(encoding="utf-8", errors="replace")
    return stream


# verify --------------------------------------------------------------------------------


def verify_command(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    log_format = _configure_logs(args)
    fail_on = _statuses(args.fail_on, "--fail-on")
    if not args.inputs and not Path(args.db).is_file():
        raise UsageError(f"{args.db}: no such database: give claims files to verify")
    db = _new_or_existing_db(args.db)
    _refuse_overwriting(args.output, "--output", [*args.inputs, *_db_files(args.db)])
    if settings.render is not RenderMode.OFF:
        render.check_rendering(settings)  # a missing browser or extra: exit 2 before any request
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(read_claims(path, format=args.format)) for path in args.inputs]
        output = stack.enter_context(_output(args.output))
        summary = sys.stderr if args.output == "-" else sys.stdout
        progress = display.run_progress(display.console(sys.stderr), quiet=args.quiet)
        outcome = run_async(
            verify_run(db, readers, settings, fresh=args.fresh, output=output, progress=progress)
        )
    # With results on stdout, stderr is the log stream: in JSON it stays JSON (the "run
    # finished" line carries the counts), so a log collector never meets a table.
    summary_in_logs = summary is sys.stderr and log_format is logs.LogFormat.JSON
    if not args.quiet and not summary_in_logs:
        display.console(summary).print(display.report_tables(outcome.report))
    for hint in _hints(outcome, settings, fail_on):
        log.warning(hint)
    return _exit_code(outcome, fail_on)


def _hints(outcome: RunOutcome, settings: Settings, fail_on: frozenset[Status]) -> Iterator[str]:
    """What a person should know after a run, one line each."""
    forbidden = outcome.reasons.get(Reason.FORBIDDEN_ADDRESS, 0)
    if forbidden and not settings.allow_private:
        yield (
            f"{forbidden} claim(s) blocked because their pages are on loopback, private or other "
            "non-public addresses (forbidden_address); --allow-private checks such pages "
            "(never turn it on against the open web)"
        )
    if outcome.interrupted:
        yield f"run {outcome.info.id} interrupted: run `crawler verify` again on this database to resume it"
    elif failed := {s: n for s in fail_on if (n := outcome.info.by_status.get(s, 0))}:
        counts = ", ".join(f"{n} {status.value}" for status, n in sorted(failed.items()))
        yield f"exit code {EXIT_FAIL_ON}: --fail-on matched {counts}"


def _db_files(db: str) -> list[str]:
    return [db, f"{db}-wal", f"{db}-shm"]


def _refuse_overwriting(path: str | None, option: str, protected: Sequence[str]) -> None:
    """Refuse an output path that names an input file or the database (nothing is touched)."""
    if path is None or path == "-":
        return
    target = Path(path)
    for other in protected:
        if other == "-":
            continue
        if _same_file(target, Path(other)):
            raise UsageError(f"{option} {path}: names {other}, which would be overwritten")


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return a.samefile(b)  # same inode: hard links, symlinks and other spellings included
    return a.resolve() == b.resolve()


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
    elif path == "-":
        yield _utf8(sys.stdout)
    else:
        try:
            stream = open(path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as error:
            raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None
        try:
            yield stream
        finally:
            # Every result was flushed as written; a close that fails has only the text of a
            # write that failed (and was reported) left in its buffer.
            with contextlib.suppress(OSError):
                stream.close()


def _exit_code(outcome: RunOutcome, fail_on: frozenset[Status]) -> int:
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if any(outcome.info.by_status.get(status) for status in fail_on):
        return EXIT_FAIL_ON
    return EXIT_OK


# export, report, demo, settings ---------------------------------------------------------


def export_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    statuses = _statuses(args.status, "--status")
    db = _existing_db(args.db)
    run_async(_export(db, args.run, statuses, ExportFormat(args.format), _utf8(sys.stdout)))
    return EXIT_OK


async def _export(db: Path, run_id: str, statuses: frozenset[Status], fmt: ExportFormat, out: TextIO) -> None:
    async with Store(db) as store:
        if fmt is ExportFormat.CSV:
            keys: dict[str, None] = {}
            async for result in store.results(run_id, statuses=statuses):
                keys.update(dict.fromkeys(result.tags))
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(csv_header(list(keys)))
            async for result in store.results(run_id, statuses=statuses):
                writer.writerow(csv_row(result, list(keys)))
            return
        await _write_json(store.results(run_id, statuses=statuses), out, fmt)


async def _write_json(results: AsyncIterator[Result], out: TextIO, fmt: ExportFormat) -> None:
    if fmt is ExportFormat.JSONL:
        async for result in results:
            out.write(json_line(result) + "\n")
        return
    separator = "\n"  # one result a line inside the array, so it streams and diffs well
    out.write("[")
    async for result in results:
        out.write(separator + json_line(result))
        separator = ",\n"
    out.write("\n]\n")


def report_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    db = _existing_db(args.db)
    report = run_async(_report(db, args.run))
    out = _utf8(sys.stdout)
    if args.format == "json":
        out.write(json.dumps(display.report_json(report), ensure_ascii=False, indent=2) + "\n")
    else:
        display.console(out).print(display.report_tables(report))
    return EXIT_OK


async def _report(db: Path, run_id: str) -> Report:
    async with Store(db) as store:
        return await store.report(run_id)


def runs_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    db = _existing_db(args.db)
    records = [display.run_record(info) for info in reversed(run_async(_runs(db)))]
    out = _utf8(sys.stdout)
    if args.format == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        display.console(out).print(display.runs_table(records))
    return EXIT_OK


async def _runs(db: Path) -> list[RunInfo]:
    async with Store(db) as store:
        return await store.runs()


def demo_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    out = display.console(_utf8(sys.stdout))
    progress = display.run_progress(display.console(sys.stderr), quiet=args.quiet)
    outcome, results, site = run_async(_demo(_new_or_existing_db(args.db), progress))
    if not args.quiet:
        hosts = ", ".join(f"{name} {where}" for name, where in site.authorities.items())
        out.print(f"Demo site served on loopback addresses: {hosts}.")
        out.print("The demo allows private addresses for that reason; never do so against the open web.\n")
    if not args.quiet:
        out.print(display.results_table(results))
        out.print(display.report_tables(outcome.report, tags=("vendor",)))
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


async def _demo(db: Path, progress: display.RunProgress) -> tuple[RunOutcome, list[Result], DemoSite]:
    from crawler.app import demo  # here: it imports aiohttp's web server, which no other command needs

    async with demo.serve() as site:
        outcome = await verify_run(db, [site.claims()], demo.demo_settings(), fresh=True, progress=progress)
    async with Store(db) as store:
        results = [result async for result in store.results(outcome.info.id)]
    return outcome, sorted(results, key=lambda result: result.claim_id), site


def settings_command(args: argparse.Namespace) -> int:
    sys.stdout.write(config.render_toml(load_settings(args)))
    return EXIT_OK
