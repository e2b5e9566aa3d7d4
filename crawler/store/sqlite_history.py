"""The monitoring fold (section 9) inside SQLite transactions: saving a batch, importing, rebuilding.

Each function here takes the plain `sqlite3.Connection` and runs whole on the database's own
thread (`SQLiteStore` queues it as one call), so a cancelled task can never split it: a batch's
results, the states of its claims and the events they caused are written in one transaction, or
none of them is (a kill -9 rolls the transaction back). The fold itself is
`crawler.core.history`; this module only reads its input and writes its output.

Rows are derived so that a rebuild writes them again byte for byte:

- `claim_states`: `history` is `ClaimHistory.to_dict()` as JSON, `run_id` the run of the last
  result folded into it (an import that restarts a claim keeps it);
- `events`: `data` is `Event.to_dict()` as JSON, stored in the order the results were stored
  (by the result, then in the fold's order), which is the order a rebuild copies them in;
- `results.state` and `data.state`: the claim's state after the result.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from crawler.core.history import FOLD_DEFAULTS, ClaimHistory, Event, on_import, settings_of, step
from crawler.models import Result
from crawler.store import sqlite_sql as sql
from crawler.store.base import Saved

_T = TypeVar("_T")
REBUILD_BATCH = 10000
"""Rows a rebuild buffers before writing them."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def save_batch(db: sqlite3.Connection, results: Sequence[Result]) -> Saved:
    """Store `results` and fold those new to their run, in one transaction; what was stored."""
    return _in_transaction(db, lambda: _fold_batch(db, results))


def rebuild(db: sqlite3.Connection) -> tuple[int, int]:
    """`refold` in a transaction of its own."""
    return _in_transaction(db, lambda: refold(db))


def restart_changed(db: sqlite3.Connection, claims: Iterable[tuple[str, str, str]]) -> int:
    """Apply `on_import` to the stored histories of usable claims just imported, (id, source_url,
    target_url) each: a claim whose URLs changed starts again from `new`. Inside the caller's
    transaction; returns how many histories changed."""
    given = {claim_id: (source, target) for claim_id, source, target in claims}
    changed = []
    for claim_id, text in db.execute(sql.HISTORIES, (json.dumps(list(given)),)):
        before = _history(claim_id, text)
        after = on_import(before, *given[claim_id])
        if after != before:
            changed.append((after.state.value, _json(after.to_dict()), claim_id))
    db.executemany(sql.RESTART_STATE, changed)
    return len(changed)


def refold(db: sqlite3.Connection) -> tuple[int, int]:
    """Recompute every claim's state and events from its results alone, in run order, each with
    its run's settings, then `on_import` with the claim's current URLs (usable claims only, as an
    import does). Inside the caller's transaction; returns (claims, events)."""
    settings = {run_id: fold_settings(text) for run_id, text in db.execute(sql.RUN_ORDER)}
    for statement in (*_statements(sql.REBUILD_TABLES), sql.CLEAR_STATES, sql.CLEAR_EVENTS):
        db.execute(statement)
    states: list[tuple[str, str, str, str | None]] = []
    events: list[tuple[int, int, str, str, str, str]] = []
    restamped: list[tuple[int, str]] = []
    claims = total = 0
    rows = _rows(db.execute(sql.ALL_RESULTS))
    for claim_id, group in itertools.groupby(rows, key=lambda row: row[1]):
        history, last_run = ClaimHistory(), None
        results = list(group)
        _, _, _, _, source, target, invalid = results[0]  # the claim's, on each of its rows
        for rowid, _, state, data, *_ in results:
            result = _result(rowid, data)
            history, caused = step(history, result, **settings.get(result.run_id, FOLD_DEFAULTS))
            last_run = result.run_id
            events.extend((rowid, n, *_event_row(event)) for n, event in enumerate(caused))
            if state != history.state.value:
                restamped.append((rowid, history.state.value))
        if source is not None and invalid is None:
            history = on_import(history, source, target)
        states.append((_utf8(claim_id), history.state.value, _json(history.to_dict()), last_run))
        claims += 1
        if len(states) >= REBUILD_BATCH or len(events) >= REBUILD_BATCH:
            total += _write_rebuilt(db, states, events, restamped)
    total += _write_rebuilt(db, states, events, restamped)
    db.execute(sql.COPY_EVENTS)
    db.execute(sql.COPY_STATES)
    for statement in _statements(sql.DROP_REBUILT):
        db.execute(statement)
    for (run_id,) in db.execute(sql.STOPPED_RUNS).fetchall():
        db.execute(sql.SET_POINTS, (point(db, run_id), run_id))
    return claims, total


def point(db: sqlite3.Connection, run_id: str) -> str:
    """The run's point on the report's series, as `runs.points` keeps it (a JSON array of live,
    referring domains, found, lost, recovered)."""
    return json.dumps(list(db.execute(sql.RUN_POINT, {"run": run_id}).fetchone()))


def fold_settings(text: str | None) -> dict[str, int]:
    """The fold's settings among a run's stored settings (JSON): `core.history.settings_of`."""
    try:
        return settings_of(json.loads(text or "{}"))
    except ValueError as error:
        raise sqlite3.DataError(f"a run's settings can't be read back: {error}") from error


def _in_transaction(db: sqlite3.Connection, work: Callable[[], _T]) -> _T:
    db.execute(sql.BEGIN_WRITE)
    try:
        done = work()
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return done


def _fold_batch(db: sqlite3.Connection, results: Sequence[Result]) -> Saved:
    fresh = _undecided(db, results)
    if not fresh:
        return Saved()
    ids = json.dumps(list(dict.fromkeys(result.claim_id for result in fresh)))
    histories = {claim_id: _history(claim_id, text) for claim_id, text in db.execute(sql.HISTORIES, (ids,))}
    settings: dict[str, dict[str, int]] = {}
    stored: list[Result] = []
    events: list[Event] = []
    last_run: dict[str, str] = {}
    for result in fresh:
        if result.run_id not in settings:
            row = db.execute(sql.RUN_SETTINGS, (result.run_id,)).fetchone()
            settings[result.run_id] = fold_settings(row[0] if row else None)
        before = histories.get(result.claim_id, ClaimHistory())
        after, caused = step(before, result, **settings[result.run_id])
        histories[result.claim_id], last_run[result.claim_id] = after, result.run_id
        stored.append(replace(result, state=after.state.value))
        events.extend(caused)
    payload = json.dumps([result.to_dict() for result in stored], ensure_ascii=False)
    db.execute(sql.SAVE, (_utf8(payload),))
    db.executemany(
        sql.PUT_STATE,
        (
            (_utf8(claim_id), histories[claim_id].state.value, _json(histories[claim_id].to_dict()), run_id)
            for claim_id, run_id in last_run.items()
        ),
    )
    db.executemany(sql.ADD_EVENT, (_event_row(event) for event in events))
    return Saved(tuple(stored), tuple(events))


def _undecided(db: sqlite3.Connection, results: Sequence[Result]) -> list[Result]:
    """The results of claims not yet decided in their run, the first of each (as the insert keeps)."""
    firsts: dict[tuple[str, str], Result] = {}
    for result in results:
        firsts.setdefault((result.run_id, result.claim_id), result)
    decided: set[tuple[str, str]] = set()
    for run_id in {run_id for run_id, _ in firsts}:
        ids = json.dumps([claim_id for run, claim_id in firsts if run == run_id])
        decided.update((run_id, row[0]) for row in db.execute(sql.DECIDED, (run_id, ids)))
    return [result for key, result in firsts.items() if key not in decided]


def _write_rebuilt(
    db: sqlite3.Connection,
    states: list[tuple[str, str, str, str | None]],
    events: list[tuple[int, int, str, str, str, str]],
    restamped: list[tuple[int, str]],
) -> int:
    db.executemany(sql.PUT_STATE, states)
    db.executemany(sql.REBUILT_EVENT, events)
    db.executemany(sql.REBUILT_STATE, restamped)
    written = len(events)
    states.clear()
    events.clear()
    restamped.clear()
    return written


def _rows(cursor: sqlite3.Cursor) -> Iterator[Any]:
    while rows := cursor.fetchmany(REBUILD_BATCH):
        yield from rows


def _event_row(event: Event) -> tuple[str, str, str, str]:
    return _utf8(event.run_id), _utf8(event.claim_id), event.event.value, _json(event.to_dict())


def _history(claim_id: str, text: str) -> ClaimHistory:
    try:
        return ClaimHistory.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise sqlite3.DataError(f"claim {claim_id}: its history can't be read back: {error}") from error


def _result(rowid: int, data: str) -> Result:
    try:
        return Result.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError) as error:
        raise sqlite3.DataError(f"results row {rowid} can't be read back: {error}") from error


def _statements(script: str) -> list[str]:
    """The statements of a script, to run one by one inside a transaction (`executescript`
    would commit it first)."""
    return [statement for statement in script.split(";") if statement.strip()]


def _json(value: Mapping[str, Any]) -> str:
    return _utf8(json.dumps(value, ensure_ascii=False))


def _utf8(text: str) -> str:
    """`text` as SQLite can take it: a lone surrogate (never valid UTF-8) becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
