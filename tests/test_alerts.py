"""The run's webhook: the document by severity and referring domain (plain values), and the POST
with its retries against real loopback servers."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog.testing
from aiohttp import web
from aiohttp.typedefs import Handler
from servers import Servers

from crawler.core.alerts import alert_document, severity, slack_message
from crawler.core.history import Event, EventType, LossReason, State
from crawler.engine.notify import notify


def event(kind: EventType, source: str = "https://blog.example.com/post", **fields: Any) -> Event:
    values: dict[str, Any] = {
        "run_id": "r2",
        "claim_id": f"c-{kind.value}-{source}",
        "source_url": source,
        "target_url": "https://shop.test/",
        "tags": {"vendor": "acme"},
        "event": kind,
        "old_state": State.LIVE,
        "new_state": State.LIVE,
        "reason": None,
        "old": None,
        "new": None,
        "checked_at": "2026-12-05T00:00:00Z",
        "last_seen_run": "r1",
    }
    return Event(**(values | fields))


class TestSeverity:
    @pytest.mark.parametrize(
        ("made", "expected"),
        [
            (event(EventType.LOST, new_state=State.LOST, reason=LossReason.LINK_REMOVED), "losses"),
            (event(EventType.BLOCKED, new_state=State.BLOCKED), "losses"),
            (event(EventType.REL_CHANGED, old="follow", new="nofollow"), "losses"),
            (event(EventType.REL_CHANGED, old="ugc", new="sponsored"), "losses"),
            (event(EventType.INDEXABILITY_CHANGED, old=True, new=False), "losses"),
            (event(EventType.RECOVERED, old_state=State.LOST), "recoveries"),
            (event(EventType.FOUND, old_state=State.NEW), "recoveries"),
            (event(EventType.UNBLOCKED, old_state=State.BLOCKED), "recoveries"),
            (event(EventType.REL_CHANGED, old="sponsored", new="follow"), "recoveries"),
            (event(EventType.INDEXABILITY_CHANGED, old=False, new=True), "recoveries"),
            (event(EventType.ANCHOR_CHANGED, old="Shoes", new="Boots"), "other"),
            (event(EventType.UNREACHABLE), "other"),
            (event(EventType.NOT_FOUND, old_state=State.NEW, new_state=State.NOT_FOUND), "other"),
        ],
    )
    def test_each_event_has_its_severity(self, made: Event, expected: str) -> None:
        """Losses and downgrades, recoveries and upgrades, and the rest (an outage is never a loss)."""
        assert severity(made) == expected


class TestDocument:
    def test_grouped_by_severity_then_referring_domain(self) -> None:
        """Severities in order; within one, referring domains (registrable) with most events first."""
        events = [
            event(EventType.FOUND, "https://a.example.org/1"),
            event(EventType.LOST, "https://www.blog.example.com/1", reason=LossReason.PAGE_GONE),
            event(EventType.LOST, "https://news.other.co.uk/x", reason=LossReason.LINK_REMOVED),
            event(EventType.LOST, "https://blog.example.com/2", reason=LossReason.LINK_REMOVED),
        ]
        document = alert_document("r2", {"live": 3, "lost": 3}, events)
        assert list(document["by_severity"]) == ["losses", "recoveries", "other"]
        losses = document["by_severity"]["losses"]
        assert [(g["referring_domain"], len(g["events"])) for g in losses] == [
            ("example.com", 2),
            ("other.co.uk", 1),
        ]
        assert document["by_severity"]["recoveries"][0]["referring_domain"] == "example.org"
        assert document["by_severity"]["other"] == []
        assert (document["run_id"], document["events"], document["by_state"]) == (
            "r2",
            4,
            {"live": 3, "lost": 3},
        )
        assert losses[0]["events"][0] == events[1].to_dict()

    def test_slack_message_is_text_and_blocks(self) -> None:
        """Slack's shape: a text fallback, a header, sections per severity, markup escaped."""
        events = [event(EventType.LOST, "https://x.test/<b>&", reason=LossReason.LINK_REMOVED)]
        message = slack_message(alert_document("r2", {"lost": 1}, events))
        assert message["text"].startswith("backlink-crawler run r2: 1 change")
        assert message["blocks"][0]["type"] == "header"
        losses = message["blocks"][2]["text"]["text"]
        assert losses.startswith("*Losses*")
        assert "x.test/&lt;b&gt;&amp;" in losses

    def test_slack_message_caps_the_list(self) -> None:
        """A long run lists 30 events in Slack and points to `crawler changes` for the rest."""
        events = [
            event(EventType.LOST, f"https://s{n}.test/", reason=LossReason.LINK_REMOVED) for n in range(45)
        ]
        message = slack_message(alert_document("r2", {"lost": 45}, events))
        listed = sum(
            block["text"]["text"].count("\n- ") for block in message["blocks"] if block["type"] == "section"
        )
        assert listed == 30
        assert "15 more" in message["blocks"][-1]["elements"][0]["text"]


def webhook(handler: Handler) -> web.Application:
    """An application taking POSTs at /hook."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    return app


class TestPost:
    async def test_retried_until_taken(self, servers: Servers) -> None:
        """Two 503s then a 204: the document arrives on the third attempt, as JSON."""
        bodies: list[bytes] = []

        async def hook(request: web.Request) -> web.Response:
            bodies.append(await request.read())
            return web.Response(status=503 if len(bodies) < 3 else 204)

        site = await servers.app(webhook(hook))
        document = alert_document("r2", {"lost": 1}, [event(EventType.LOST, reason=LossReason.LINK_REMOVED)])
        assert await notify(site.url("/hook"), document, backoff=0.01)
        assert len(bodies) == 3
        assert json.loads(bodies[-1]) == json.loads(json.dumps(document))

    async def test_a_dead_webhook_is_logged_never_raised(self, servers: Servers) -> None:
        """A webhook that keeps failing is given up after the attempts, logged, and nothing raises."""
        calls: list[int] = []

        async def hook(request: web.Request) -> web.Response:
            calls.append(1)
            return web.Response(status=500)

        site = await servers.app(webhook(hook))
        with structlog.testing.capture_logs() as logged:
            assert not await notify(site.url("/hook"), alert_document("r2", {}, []), backoff=0.01)
        assert len(calls) == 3
        assert [line["event"] for line in logged][-1].startswith("webhook given up")

    async def test_a_4xx_is_final(self, servers: Servers) -> None:
        """A 404 means a wrong URL: no retry."""
        calls: list[int] = []

        async def hook(request: web.Request) -> web.Response:
            calls.append(1)
            return web.Response(status=404)

        site = await servers.app(webhook(hook))
        assert not await notify(site.url("/hook"), alert_document("r2", {}, []), backoff=0.01)
        assert calls == [1]

    async def test_slack_format_posts_the_message(self, servers: Servers) -> None:
        """notify_format slack sends Slack's incoming-webhook shape."""
        bodies: list[dict[str, Any]] = []

        async def hook(request: web.Request) -> web.Response:
            bodies.append(await request.json())
            return web.Response(text="ok")

        site = await servers.app(webhook(hook))
        assert await notify(site.url("/hook"), alert_document("r2", {}, []), format="slack")
        assert set(bodies[0]) == {"text", "blocks"}
