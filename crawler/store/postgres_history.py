"""The monitoring fold (section 9) inside PostgreSQL transactions: saving a batch behind the fence,
importing claims, rebuilding.

Each coroutine here runs inside a transaction its caller opened on one connection, so a batch's
results, the states of its claims and the events they caused are committed together or not at
all. The fold itself is `crawler.core.history`; this module reads its input and writes its
output, in the forms the SQLite store writes (`sqlite_history.py`), so both hold the same rows:

- `claim_states`: `history` is `ClaimHistory.to_dict()` as JSON, `run_id` the run of the last
  result folded into it (an import that restarts a claim keeps it);
- `events`: `data` is `Event.to_dict()` as JSON, keyed by the `seq` of the result that caused it
  and its place among that result's events, which a rebuild derives again;
- `results.state` and `data.state`: the claim's state after the result.

Ordering. A claim's history is read and changed only under its `claims` row lock, taken before
it is read (`LOCK_CLAIMS`): savers and importers working on the same claims at once take turns,
each folding what the previous one committed. Within a run, one process decides a claim (its
host's lease holder), and a claim keeps its first result. Across runs, results reach a claim in
run order when they come through leases: one run at a time is `running`, and a lease holds only
in it. A library caller that later saves results of an earlier run (under no lease) has them
folded after the later ones, as the SQLite store does; `history --rebuild` folds in run order.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from crawler.core import urls
from crawler.core.history import FOLD_DEFAULTS, ClaimHistory, Event, on_import, settings_of, step
from crawler.models import Result
from crawler.store import postgres_sql as sql
from crawler.store.base import Saved

REBUILD_CLAIMS = 1000
"""Claims a rebuild folds and writes at a time."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Folded = dict[str, tuple[ClaimHistory, str]]
"""Each claim's history after a batch, with the run of its last result."""


class Unreadable(Exception):
    """A stored value this crawler can't read back (edited by hand, written by another program)."""


class Raced(Exception):
    """A result of the batch was stored meanwhile by a writer that took no claim lock (a crawler of
    an older version): the transaction is rolled back and may be tried again."""


async def save_batch(
    db: asyncpg.Connection, *, worker: str, tokens: Mapping[str, int], batch: Sequence[tuple[str, Result]]
) -> Saved:
    """Store the results of `batch` (host and result; host "" for a result decided under no lease)
    that the fence lets through and that are new to their run, with their claims' states and the
    events they cause. Inside the caller's transaction; returns what was stored. A result the
    fence refuses is not stored, and changes no state and causes no event."""
    accepted = await _fenced(db, worker, tokens, batch)
    if not accepted:
        return Saved()
    ids = sorted({result.claim_id for result in accepted})
    await db.execute(sql.LOCK_CLAIMS, ids)
    pairs = await db.fetch(sql.DECIDED, [r.run_id for r in accepted], [r.claim_id for r in accepted])
    decided = {(row["run_id"], row["claim_id"]) for row in pairs}
    fresh = [result for result in accepted if (result.run_id, result.claim_id) not in decided]
    if not fresh:
        return Saved()
    histories = {
        row["claim_id"]: _history(row["claim_id"], row["history"])
        for row in await db.fetch(sql.HISTORIES, ids)
    }
    runs = sorted({result.run_id for result in fresh})
    settings = {row["id"]: fold_settings(row["settings"]) for row in await db.fetch(sql.RUN_SETTINGS, runs)}
    stored, folded, events = fold_batch(histories, fresh, settings)
    count = await db.fetchval(
        sql.SAVE, *_result_columns(stored), *_state_columns(folded), *_event_columns(events)
    )
    if count != len(stored):
        raise Raced(f"{len(stored) - count} of the results were stored meanwhile by another writer")
    return Saved(tuple(stored), tuple(event for _, event in events))


def fold_batch(
    histories: Mapping[str, ClaimHistory],
    results: Sequence[Result],
    settings: Mapping[str, Mapping[str, int]],
) -> tuple[list[Result], Folded, list[tuple[int, Event]]]:
    """Fold `results` (each new to its run) in order into their claims' `histories`: the results
    with their state, each claim's history after them, and the events caused, each with its
    place among its result's events. Pure."""
    current = dict(histories)
    stored: list[Result] = []
    folded: Folded = {}
    events: list[tuple[int, Event]] = []
    for result in results:
        before = current.get(result.claim_id, ClaimHistory())
        after, caused = step(before, result, **settings.get(result.run_id, FOLD_DEFAULTS))
        current[result.claim_id] = after
        folded[result.claim_id] = (after, result.run_id)
        stored.append(replace(result, state=after.state.value))
        events.extend(enumerate(caused))
    return stored, folded, events


async def restart_changed(db: asyncpg.Connection, claims: Sequence[tuple[str, str, str]]) -> int:
    """Apply `on_import` to the stored histories of usable claims just imported, (id, source_url,
    target_url) each: a claim whose URLs changed starts again from `new`. Inside the caller's
    transaction, with the claims locked; returns how many histories changed."""
    given = {claim_id: (source, target) for claim_id, source, target in claims}
    changed: list[tuple[str, str, str]] = []
    for row in await db.fetch(sql.HISTORIES, list(given)):
        before = _history(row["claim_id"], row["history"])
        after = on_import(before, *given[row["claim_id"]])
        if after != before:
            changed.append((row["claim_id"], after.state.value, _json(after.to_dict())))
    if changed:
        await db.execute(sql.RESTART_STATES, *_columns(changed, 3))
    return len(changed)


async def refold(db: asyncpg.Connection) -> tuple[int, int]:
    """Recompute every claim's state and events from its results alone, in run order, each with
    its run's settings, then `on_import` with the claim's current URLs (usable claims only, as an
    import does); the kept points of stopped runs too. Inside the caller's transaction, which
    holds the locks (`LOCK_RUNS`, `LOCK_ALL_CLAIMS`) or created the tables; returns (claims, events)."""
    settings = {row["id"]: fold_settings(row["settings"]) for row in await db.fetch(sql.RUN_ORDER)}
    await db.execute(sql.CLEAR_STATES)
    await db.execute(sql.CLEAR_EVENTS)
    claims = events = 0
    after = ""
    while rows := await db.fetch(sql.CLAIMS_RESULTS, after, REBUILD_CLAIMS):
        states: list[tuple[str, str, str, str | None]] = []
        caused: list[tuple[int, int, str, str, str, str]] = []
        restamped: list[tuple[str, int, str, str | None, str]] = []
        for claim_id, group in itertools.groupby(rows, key=lambda row: row["claim_id"]):
            history, last_run = ClaimHistory(), None
            results = list(group)
            for row in results:
                result = _result(row["seq"], row["data"])
                history, new = step(history, result, **settings.get(result.run_id, FOLD_DEFAULTS))
                last_run = result.run_id
                caused.extend((row["seq"], n, *_event_row(event)) for n, event in enumerate(new))
                state, domain = history.state.value, urls.referring_domain(result.source_url)
                if (row["state"], result.state, row["referring_domain"]) != (state, state, domain):
                    data = _json(replace(result, state=state).to_dict())
                    restamped.append((result.run_id, row["seq"], state, domain, data))
            claim = results[0]  # the claim's fields are on each of its rows
            if claim["source_url"] is not None and claim["invalid_reason"] is None:
                history = on_import(history, claim["source_url"], claim["target_url"])
            states.append((claim_id, history.state.value, _json(history.to_dict()), last_run))
        await db.execute(sql.PUT_STATES, *_columns(states, 4))
        if caused:
            await db.execute(sql.ADD_EVENTS, *_columns(caused, 6))
        if restamped:
            await db.execute(sql.RESTAMP, *_columns(restamped, 5))
        claims, events = claims + len(states), events + len(caused)
        after = rows[-1]["claim_id"]
    for row in await db.fetch(sql.STOPPED_RUNS):
        await db.execute(sql.SET_POINTS, row["id"], await point(db, row["id"]))
    return claims, events


async def point(db: asyncpg.Connection, run_id: str) -> str:
    """The run's point on the report's series, as `runs.points` keeps it (a JSON array of live,
    referring domains, found, lost, recovered), in the SQLite store's form."""
    row = await db.fetchrow(sql.RUN_POINT, run_id)
    return json.dumps(list(row) if row is not None else [0] * 5)


def fold_settings(text: str | None) -> dict[str, int]:
    """The fold's settings among a run's stored settings (JSON): `core.history.settings_of`."""
    try:
        return settings_of(json.loads(text or "{}"))
    except ValueError as error:
        raise Unreadable(f"a run's settings can't be read back: {error}") from error


async def _fenced(
    db: asyncpg.Connection, worker: str, tokens: Mapping[str, int], batch: Sequence[tuple[str, Result]]
) -> list[Result]:
    """The results of `batch` the fence lets through, in order; the hosts of those decided under a
    lease stay locked (`FOR SHARE`) until the transaction ends."""
    current: dict[str, set[str]] = {}
    for run_id in dict.fromkeys(result.run_id for host, result in batch if host):
        rows = await db.fetch(sql.FENCE, run_id, worker, list(tokens), list(tokens.values()))
        current[run_id] = {row["host"] for row in rows}
    return [result for host, result in batch if not host or host in current.get(result.run_id, ())]


def _result_columns(results: Sequence[Result]) -> list[list[Any]]:
    rows = []
    for result in results:
        data = result.to_dict()
        rows.append(
            (
                result.run_id,
                result.claim_id,
                data["status"],
                _text(data["reason"]),
                _json(data["flags"]),
                _json(data["tags"]),
                data["http_status"],
                _text(data["final_url"]),
                _text(data["checked_at"]),
                data["state"],
                urls.referring_domain(result.source_url),
                _json(data),
            )
        )
    return _columns(rows, 12)


def _state_columns(folded: Folded) -> list[list[Any]]:
    rows = [
        (claim_id, history.state.value, _json(history.to_dict()), run_id)
        for claim_id, (history, run_id) in folded.items()
    ]
    return _columns(rows, 4)


def _event_columns(events: Sequence[tuple[int, Event]]) -> list[list[Any]]:
    rows = [
        (event.run_id, event.claim_id, n, event.event.value, _json(event.to_dict())) for n, event in events
    ]
    return _columns(rows, 5)


def _event_row(event: Event) -> tuple[str, str, str, str]:
    return event.run_id, event.claim_id, event.event.value, _json(event.to_dict())


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows turned into `width` column lists, as `unnest` takes them (empty lists for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _history(claim_id: str, text: str) -> ClaimHistory:
    try:
        return ClaimHistory.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise Unreadable(f"claim {claim_id}: its history can't be read back: {error}") from error


def _result(seq: int, data: str) -> Result:
    try:
        return Result.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError) as error:
        raise Unreadable(f"results row {seq} can't be read back: {error}") from error


def _json(value: object) -> str:
    """JSON as PostgreSQL's text takes it: a lone surrogate (never valid UTF-8) becomes U+FFFD
    (NUL is escaped by the encoder)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if text.isascii() or _encodes(text) else _SURROGATE.sub("\ufffd", text)


def _text(value: str | None) -> str | None:
    """A plain text value as PostgreSQL takes it: no NUL, no lone surrogate."""
    if value is None or ("\x00" not in value and _encodes(value)):
        return value
    return _UNSTORABLE.sub("\ufffd", value)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
