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
import asyncio
import contextlib
import csv
import io
import json
import os
import queue
import sys
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from crawler import config, logs
from crawler.app import display, report_html, reporting, summary, xlsx
from crawler.app.export import ExportFormat, cells, csv_header, csv_row, json_line
from crawler.app.inputs import FORMATS, read_claims
from crawler.app.run import RunOutcome, run_async, until_done_or_signalled, verify_run
from crawler.config import SPECS, Kind, RenderMode, Settings, SettingSpec, __version__
from crawler.core import alerts
from crawler.core.figures import Figures
from crawler.core.history import Event, EventType, State
from crawler.engine import archive, notify, render
from crawler.errors import ConfigError, CrawlerError
from crawler.models import Reason, Result, Status
from crawler.store.backends import is_postgres, open_store
from crawler.store.base import RunInfo, RunStore

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
    words = list(sys.argv[1:] if argv is None else argv)
    try:  # from the first line: a SIGTERM while the parser is built is an interrupt too (130)
        parser = build_parser()
        if not words:  # a bare `crawler`: what it can do, not an error
            parser.print_help()
            return EXIT_OK
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
    export.add_argument("--output", metavar="PATH", help="the file an xlsx export is written to")
    export.set_defaults(handler=export_command)
    report = commands.add_parser("report", parents=[common, database], help="summarise a run")
    report.add_argument("--format", choices=["table", "json"], default="table")
    report.add_argument("--html", metavar="PATH", help="write the self-contained HTML report here")
    report.add_argument("--by", metavar="TAGS", default="", help="tag columns to break down, comma-separated")
    _run_selection(report)
    report.set_defaults(handler=report_command)
    evidence = commands.add_parser(
        "evidence", parents=[common, database], help="the archived response a claim's verdict was taken on"
    )
    evidence.add_argument("claim_id", metavar="CLAIM_ID")
    _run_selection(evidence)
    evidence.add_argument("--body", action="store_true", help="write the decoded body to standard output")
    evidence.add_argument("--archive", metavar="DIR", help="the archive directory (default: the run's)")
    evidence.set_defaults(handler=evidence_command)
    changes = commands.add_parser(
        "changes", parents=[common, database], help="the events of a run, or since one"
    )
    _run_selection(changes)
    changes.add_argument("--since", metavar="RUN_ID", help="every run after this one")
    changes.add_argument(
        "--event", metavar="TYPES", default="", help="only these event types, comma-separated"
    )
    changes.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    changes.set_defaults(handler=changes_command)
    history = commands.add_parser("history", parents=[common, database], help="one claim's results over time")
    history.add_argument("claim_id", nargs="?", metavar="CLAIM_ID")
    history.add_argument("--format", choices=["table", "jsonl"], default="table")
    history.add_argument(
        "--rebuild", action="store_true", help="recompute every state and event from the results"
    )
    history.set_defaults(handler=history_command)
    worker = commands.add_parser(
        "worker",
        parents=[common, database, settings],
        help="work on the running run of a PostgreSQL database",
    )
    worker.add_argument("--wait", action="store_true", help="with no run running, wait for the next one")
    worker.set_defaults(handler=worker_command)
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
    add("--states", metavar="STATES", default="", help="a new run of the stored claims in these states")
    add("--events", metavar="PATH", help="also write each event as a JSON line here (- is stdout)")
    add("--fail-on-event", metavar="EVENTS", default="", help="exit 1 if the run had one of these events")
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


def _existing_db(path: str) -> str:
    """The database at `path`; a command that reads results must not create an empty one."""
    if not is_postgres(path) and not Path(path).is_file():
        raise UsageError(f"{path}: no such database")
    return path


def _new_or_existing_db(path: str) -> str:
    """The database at `path`, which a run may create: its directory must exist."""
    if not is_postgres(path) and not Path(path).parent.is_dir():
        raise UsageError(f"{path}: cannot create the database: no directory {Path(path).parent}")
    return path


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
    fail_on_event = _words(args.fail_on_event, "--fail-on-event", EventType)
    states = _words(args.states, "--states", State)
    if states and args.inputs:
        raise UsageError("--states takes no input: it re-checks the stored claims in those states")
    if not args.inputs and not is_postgres(args.db) and not Path(args.db).is_file():
        raise UsageError(f"{args.db}: no such database: give claims files to verify")
    db = _new_or_existing_db(args.db)
    protected = [*args.inputs, *_db_files(args.db)]
    _refuse_overwriting(args.output, "--output", protected)
    _refuse_overwriting(args.events, "--events", protected)
    if args.output is not None and args.output == args.events:
        raise UsageError("--output and --events name the same stream")
    if settings.render is not RenderMode.OFF:
        render.check_rendering(settings)  # a missing browser or extra: exit 2 before any request
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(read_claims(path, format=args.format)) for path in args.inputs]
        output = stack.enter_context(_output(args.output))
        events = stack.enter_context(_output(args.events))
        summary_stream = sys.stderr if "-" in (args.output, args.events) else sys.stdout
        progress = display.run_progress(display.console(sys.stderr), quiet=args.quiet)
        run = verify_run(
            db,
            readers,
            settings,
            fresh=args.fresh,
            output=output,
            progress=progress,
            events_output=events,
            states=[State(word) for word in states],
        )
        outcome = run_async(run)
    figures, matched = run_async(_after_run(db, outcome.info.id, settings, fail_on_event))
    tables = summary.summary_tables(figures)
    # With results on stdout, stderr is the log stream: in JSON it stays JSON (the "run
    # finished" line carries the counts), so a log collector never meets a table.
    summary_in_logs = summary_stream is sys.stderr and log_format is logs.LogFormat.JSON
    if not args.quiet and not summary_in_logs:
        display.console(summary_stream).print(tables)
    for hint in _hints(outcome, settings, fail_on, matched):
        log.warning(hint)
    return _exit_code(outcome, fail_on, matched)


async def _after_run(
    db: str, run_id: str, settings: Settings, fail_on_event: frozenset[str]
) -> tuple[Figures, dict[str, int]]:
    """The run's figures, the counts of the `--fail-on-event` events of the whole run, and the
    webhook posted (when `notify` is set: it never fails the run)."""
    async with open_store(db) as store:
        figures = await reporting.gather(store, run_id)
        matched: Counter[str] = Counter()
        if fail_on_event:
            async for event in store.events(run_id=run_id, types=fail_on_event):
                matched[event.event.value] += 1
        if settings.notify:
            events = [event async for event in store.events(run_id=run_id)]
            by_state = {state.value: n for state, n in (await store.state_counts(run_id)).items()}
            document = alerts.alert_document(run_id, by_state, events)
            await notify.notify(
                settings.notify,
                document,
                format=settings.notify_format.value,
                user_agent=settings.user_agent,
            )
    return figures, dict(matched)


def _words(text: str | None, option: str, kind: type[StrEnum]) -> frozenset[str]:
    words = frozenset(word.strip().lower() for word in (text or "").split(",") if word.strip())
    allowed = {member.value for member in kind}
    unknown = sorted(words - allowed)
    if unknown:
        raise UsageError(f"{option}: {', '.join(unknown)} is not one of {', '.join(sorted(allowed))}")
    return words


def _hints(
    outcome: RunOutcome, settings: Settings, fail_on: frozenset[Status], events: Mapping[str, int]
) -> Iterator[str]:
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
    if events and not outcome.interrupted:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(events.items()))
        yield f"exit code {EXIT_FAIL_ON}: --fail-on-event matched {counts}"


def _db_files(db: str) -> list[str]:
    return [] if is_postgres(db) else [db, f"{db}-wal", f"{db}-shm"]


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


def _exit_code(outcome: RunOutcome, fail_on: frozenset[Status], events: Mapping[str, int]) -> int:
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if events or any(outcome.info.by_status.get(status) for status in fail_on):
        return EXIT_FAIL_ON
    return EXIT_OK


# export, report, demo, settings ---------------------------------------------------------


def export_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    statuses = _statuses(args.status, "--status")
    db = _existing_db(args.db)
    fmt = ExportFormat(args.format)
    if fmt is ExportFormat.XLSX:
        if args.output in (None, "-"):
            raise UsageError("--format xlsx writes a file: give --output PATH")
        _refuse_overwriting(args.output, "--output", _db_files(args.db))
        try:
            rows = run_async(_export_xlsx(db, args.run, statuses, Path(args.output)))
        except OSError as error:
            raise UsageError(f"{args.output}: cannot write: {error.strerror or error}") from None
        log.info("export written", path=args.output, rows=rows)
        return EXIT_OK
    if args.output not in (None, "-"):
        raise UsageError("--output is for --format xlsx; the other formats go to standard output")
    run_async(_export(db, args.run, statuses, fmt, _utf8(sys.stdout)))
    return EXIT_OK


async def _tag_keys(store: RunStore, run_id: str, statuses: frozenset[Status]) -> list[str]:
    keys: dict[str, None] = {}
    async for result in store.results(run_id, statuses=statuses):
        keys.update(dict.fromkeys(result.tags))
    return list(keys)


async def _export(db: str, run_id: str, statuses: frozenset[Status], fmt: ExportFormat, out: TextIO) -> None:
    async with open_store(db) as store:
        rows = store.export_rows(run_id, statuses=statuses)
        if fmt is ExportFormat.CSV:
            keys = await _tag_keys(store, run_id, statuses)
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(csv_header(keys))
            async for result, claim in rows:
                writer.writerow(csv_row(result, claim, keys))
        elif fmt is ExportFormat.JSONL:
            async for result, claim in rows:
                out.write(json_line(result, claim) + "\n")
        else:
            separator = "\n"  # one result a line inside the array, so it streams and diffs well
            out.write("[")
            async for result, claim in rows:
                out.write(separator + json_line(result, claim))
                separator = ",\n"
            out.write("\n]\n")


async def _export_xlsx(db: str, run_id: str, statuses: frozenset[Status], path: Path) -> int:
    """Rows streamed from the store to openpyxl's write-only writer on a thread, a thousand at a
    time through a bounded queue: a million-row export never holds its rows in memory."""
    chunks: queue.Queue[list[list[str]] | None] = queue.Queue(maxsize=4)

    def rows() -> Iterator[list[str]]:
        while (chunk := chunks.get()) is not None:
            yield from chunk

    async with open_store(db) as store:
        keys = await _tag_keys(store, run_id, statuses)
        header = csv_header(keys)
        writing = asyncio.ensure_future(asyncio.to_thread(xlsx.write_results_xlsx, path, header, rows()))

        async def hand_over(chunk: list[list[str]] | None) -> None:
            while not writing.done():  # a writer that failed takes no more rows: its error is raised below
                with contextlib.suppress(queue.Full):
                    await asyncio.to_thread(chunks.put, chunk, timeout=0.5)
                    return

        chunk: list[list[str]] = []
        try:
            async for result, claim in store.export_rows(run_id, statuses=statuses):
                chunk.append(cells(result, claim, keys))
                if len(chunk) == 1000:
                    await hand_over(chunk)
                    chunk = []
            await hand_over(chunk)
        finally:
            await hand_over(None)
        return await writing


def report_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    db = _existing_db(args.db)
    _refuse_overwriting(args.html, "--html", _db_files(args.db))
    by = [name.strip() for name in args.by.split(",") if name.strip()]
    figures = run_async(_figures(db, args.run, by))
    if args.html is not None:
        _write_html(Path(args.html), report_html.render(figures, db=args.db))
        log.info("report written", path=args.html, run_id=figures.run.id)
        return EXIT_OK
    out = _utf8(sys.stdout)
    if args.format == "json":
        out.write(json.dumps(figures.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        display.console(out).print(summary.summary_tables(figures, tags=by or None))
    return EXIT_OK


async def _figures(db: str, run_id: str, by: Sequence[str] = ()) -> Figures:
    async with open_store(db) as store:
        return await reporting.gather(store, run_id, by=by)


def _write_html(path: Path, text: str) -> None:
    """Write the report whole or not at all (a temporary file beside it, then renamed)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None


def evidence_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    db = _existing_db(args.db)
    result, settings = run_async(_evidence_of(db, args.claim_id, args.run))
    if result.evidence is None:
        why = (
            "blocked, unreachable or invalid: no page answered"
            if result.body_sha256 is None
            else "no archive"
        )
        raise UsageError(f"claim {args.claim_id}: no evidence in run {result.run_id} ({why})")
    directory = args.archive or settings.get("archive")
    if not directory:
        raise UsageError(f"run {result.run_id} kept no archive directory: give --archive DIR")
    record = archive.read_record(str(directory), result.evidence)
    if args.body:
        sys.stdout.flush()
        sys.stdout.buffer.write(record.body)
        sys.stdout.buffer.flush()
        return EXIT_OK
    lines = {
        "file": result.evidence.file,
        "offset": result.evidence.offset,
        "record_id": record.record_id,
        "url": record.url,
        "date": record.date,
        "http_status": record.http_status if record.http_status is not None else "",
        "body_sha256": record.body_sha256,
    }
    _utf8(sys.stdout).write("".join(f"{key}: {value}\n" for key, value in lines.items()))
    return EXIT_OK


async def _evidence_of(db: str, claim_id: str, run_id: str) -> tuple[Result, Mapping[str, Any]]:
    async with open_store(db) as store:
        info = await store.run_info(run_id)
        result = await store.result(claim_id, info.id)
    if result is None:
        raise UsageError(f"claim {claim_id}: no result in run {info.id}")
    return result, info.settings


def changes_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    db = _existing_db(args.db)
    types = _words(args.event, "--event", EventType)
    out = _utf8(sys.stdout)
    run_async(_changes(db, args.run, args.since, types, args.format, out))
    return EXIT_OK


async def _changes(
    db: str, run_id: str, since: str | None, types: frozenset[str], fmt: str, out: TextIO
) -> None:
    async with open_store(db) as store:
        events = store.events(run_id=run_id, since=since, types=types)
        if fmt == "jsonl":
            async for event in events:
                out.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        elif fmt == "csv":
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(display.EVENT_FIELDS)
            async for event in events:
                writer.writerow(display.event_cells(event))
        else:
            display.console(out).print(display.events_table([event async for event in events]))


def history_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    db = _existing_db(args.db)
    if args.rebuild:
        claims, events = run_async(_rebuild(db))
        log.info("history rebuilt", claims=claims, events=events)
        return EXIT_OK
    if args.claim_id is None:
        raise UsageError("history: give a CLAIM_ID (or --rebuild)")
    rows = run_async(_history(db, args.claim_id))
    records = display.history_records(rows)
    out = _utf8(sys.stdout)
    if args.format == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        display.console(out).print(display.history_table(args.claim_id, records))
    return EXIT_OK


async def _history(db: str, claim_id: str) -> list[tuple[Result, tuple[Event, ...]]]:
    async with open_store(db) as store:
        return await store.history(claim_id)


async def _rebuild(db: str) -> tuple[int, int]:
    async with open_store(db) as store:
        return await store.rebuild_history()


def worker_command(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    _configure_logs(args)
    if not is_postgres(args.db):
        raise UsageError(
            f"worker needs a PostgreSQL --db (postgresql://...), not {args.db}: "
            "a SQLite database's run is held by one process"
        )
    if settings.render is not RenderMode.OFF:
        render.check_rendering(settings)
    interrupted = run_async(_worker(args.db, settings, wait=args.wait))
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


async def _worker(db: str, settings: Settings, *, wait: bool) -> bool:
    from crawler.engine import leases
    from crawler.store.postgres import PostgresStore

    async with open_store(db) as store:
        assert isinstance(store, PostgresStore)

        async def job() -> None:
            await leases.work(store, settings, wait=wait)

        return await until_done_or_signalled(asyncio.create_task(job()))


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


async def _runs(db: str) -> list[RunInfo]:
    async with open_store(db) as store:
        return await store.runs()


def demo_command(args: argparse.Namespace) -> int:
    _configure_logs(args)
    out = display.console(_utf8(sys.stdout))
    progress = display.run_progress(display.console(sys.stderr), quiet=args.quiet)
    outcome, results, figures, site = run_async(_demo(_new_or_existing_db(args.db), progress))
    if not args.quiet:
        hosts = ", ".join(f"{name} {where}" for name, where in site.authorities.items())
        out.print(f"Demo site served on loopback addresses: {hosts}.")
        out.print("The demo allows private addresses for that reason; never do so against the open web.\n")
        out.print(display.results_table(results))
        out.print(summary.summary_tables(figures, tags=("vendor",)))
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


async def _demo(db: str, progress: display.RunProgress) -> tuple[RunOutcome, list[Result], Figures, DemoSite]:
    from crawler.app import demo  # here: it imports aiohttp's web server, which no other command needs

    async with demo.serve() as site:
        outcome = await verify_run(db, [site.claims()], demo.demo_settings(), fresh=True, progress=progress)
    async with open_store(db) as store:
        results = [result async for result in store.results(outcome.info.id)]
        figures = await reporting.gather(store, outcome.info.id)
    return outcome, sorted(results, key=lambda result: result.claim_id), figures, site


def settings_command(args: argparse.Namespace) -> int:
    sys.stdout.write(config.render_toml(load_settings(args)))
    return EXIT_OK
