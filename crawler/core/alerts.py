"""What a run's webhook says (SPEC section 9): its events by severity and by referring domain.

Pure: a run id, counts by state and the run's events in; one JSON document out, or Slack's
incoming-webhook message built from it. Severity, most urgent first:

- `losses`: `lost`, `blocked`, and downgrades: `rel_changed` away from `follow`, or to a kind that
  passes less (`ugc` to `sponsored`...), `indexability_changed` to false;
- `recoveries`: `recovered`, `found`, `unblocked`, and upgrades (the same changes the other way);
- `other`: `not_found`, `anchor_changed`, `unreachable` (an outage is never a loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crawler.core import urls
from crawler.core.history import Event, EventType

SEVERITIES = ("losses", "recoveries", "other")
# How much a rel kind passes: follow passes value, the others none, sponsored least of all.
_REL_RANK = {"follow": 3, "nofollow": 2, "ugc": 1, "sponsored": 0}
_LOSSES = frozenset({EventType.LOST, EventType.BLOCKED})
_RECOVERIES = frozenset({EventType.RECOVERED, EventType.FOUND, EventType.UNBLOCKED})
# Events listed in a Slack message before "... and N more" (Slack caps a message's length).
SLACK_EVENTS = 30


def severity(event: Event) -> str:
    """`losses`, `recoveries` or `other`."""
    kind = EventType(event.event)
    if kind in _LOSSES:
        return "losses"
    if kind in _RECOVERIES:
        return "recoveries"
    if kind is EventType.REL_CHANGED:
        old, new = _REL_RANK.get(str(event.old), 0), _REL_RANK.get(str(event.new), 0)
        return "losses" if new < old else "recoveries" if new > old else "other"
    if kind is EventType.INDEXABILITY_CHANGED:
        return "recoveries" if event.new is True else "losses"
    return "other"


def alert_document(run_id: str, by_state: Mapping[str, int], events: Iterable[Event]) -> dict[str, Any]:
    """The webhook's JSON document: the run, its counts by state, and its events grouped by
    severity (in the order above) and, within each, by referring domain (most events first)."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in SEVERITIES}
    total = 0
    for event in events:
        domains = grouped[severity(event)]
        domains.setdefault(urls.referring_domain(event.source_url) or "", []).append(event.to_dict())
        total += 1
    return {
        "run_id": run_id,
        "by_state": dict(by_state),
        "events": total,
        "by_severity": {
            name: [
                {"referring_domain": domain, "events": listed}
                for domain, listed in sorted(domains.items(), key=lambda item: (-len(item[1]), item[0]))
            ]
            for name, domains in grouped.items()
        },
    }


def slack_message(document: Mapping[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook message (text and blocks) for an `alert_document`."""
    counts = ", ".join(f"{n} {state}" for state, n in document["by_state"].items() if n)
    title = f"backlink-crawler run {document['run_id']}: {document['events']} change(s)"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*States:* {counts or 'none'}"}},
    ]
    shown = 0
    for name in SEVERITIES:
        lines = []
        for group in document["by_severity"][name]:
            for event in group["events"]:
                if shown < SLACK_EVENTS:
                    lines.append(_slack_line(group["referring_domain"], event))
                shown += 1
        if lines:
            text = f"*{name.capitalize()}*\n" + "\n".join(lines)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if shown > SLACK_EVENTS:
        more = f"... and {shown - SLACK_EVENTS} more: `crawler changes --run {document['run_id']}`"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": title, "blocks": blocks}


def _slack_line(domain: str, event: Mapping[str, Any]) -> str:
    change = f" ({event['old']} -> {event['new']})" if event["old"] is not None else ""
    reason = f" ({event['reason']})" if event["reason"] else ""
    return (
        f"- {_slack_escape(domain)}: {event['event']}{reason}{change}: {_slack_escape(event['source_url'])}"
    )


def _slack_escape(text: str) -> str:
    """Slack's three control characters in mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
