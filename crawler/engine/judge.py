"""The claims of one fetched page judged: on the raw page, and on the page as a browser renders it
when that is needed (SPEC section 12).

`render = auto`: the raw verdicts come first; when some are `missing` and `render_gate` says the
page looks built by scripts, the page is rendered once for those claims (waiting for their
targets' links), read again and judged again. `always`: every 2xx HTML page is rendered and all
its claims are judged on the rendered document. A matched link that no raw link resolves to is
flagged `js_rendered`; a render that failed, or timed out with the claim still missing, leaves the
raw verdict flagged `render_failed`. With an archive, the rendered document is kept as a
`conversion` record and the result's evidence points at it (`body_sha256` stays the raw body's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from crawler import logs
from crawler.config import RenderMode, Settings
from crawler.core import decode, render_gate, urls, verdict
from crawler.engine.archive import Archive
from crawler.engine.fetch import Response
from crawler.engine.pages import PageFetcher
from crawler.engine.render import Renderer
from crawler.errors import CrawlerError
from crawler.models import Claim, Fetched, Flag, Page, Reason, Result, Status

log = logs.get_logger(__name__)

_RENDERED_TYPE = "text/html; charset=utf-8"


class Judge:
    """Verdicts on the claims of a page, rendering it when the settings and the gate say so."""

    def __init__(
        self,
        settings: Settings,
        run_id: str,
        pages: PageFetcher,
        renderer: Renderer | None = None,
        archive: Archive | None = None,
    ) -> None:
        self._settings = settings
        self._run_id = run_id
        self._pages = pages
        self._renderer = renderer
        self._archive = archive

    async def results(
        self, claims: Sequence[Claim], fetched: Fetched, final: Response | None
    ) -> list[Result]:
        """One result per claim, in order."""
        results = [await self.decide(claim, fetched, final) for claim in claims]
        if self._renderer is None or fetched.page is None or not 200 <= (fetched.status or 0) < 300:
            return results
        if final is None:
            return results
        chosen = self._to_render(claims, results, fetched, final)
        if not chosen:
            return results
        html = decode.decode_html(final.body, final.header("content-type")).utf8
        try:
            return await self._rendered(claims, results, chosen, fetched, final, html)
        except CrawlerError:
            raise
        except Exception:  # a bug while rendering: the raw verdicts stand, flagged inconclusive
            log.exception("render_failed", url=fetched.final_url)
            return _render_failed(results, chosen)

    async def decide(self, claim: Claim, fetched: Fetched, final: Response | None = None) -> Result:
        """The verdict on `claim` from the raw page (read again for it when it was read for others)."""
        now = datetime.now(UTC)
        agent = self._settings.index_agent
        try:
            fetched = await self._pages.reread(fetched, final, claim)
            result = verdict.decide(claim, fetched, run_id=self._run_id, now=now, index_agent=agent)
        except CrawlerError:
            raise
        except Exception:  # a bug, perhaps triggered by a hostile page: this claim fails, not the run
            log.exception("verdict_failed", url=fetched.url, claim_id=claim.id)
            failed = Fetched(url=fetched.url, reason=Reason.INTERNAL_ERROR)
            return verdict.decide(claim, failed, run_id=self._run_id, now=now, index_agent=agent)
        if fetched.body_sha256 is None:
            return result
        return replace(result, body_sha256=fetched.body_sha256, evidence=fetched.evidence)

    def _to_render(
        self, claims: Sequence[Claim], results: Sequence[Result], fetched: Fetched, final: Response
    ) -> list[int]:
        """The indices of the claims to judge again on the rendered page (none: no render)."""
        if self._settings.render is RenderMode.ALWAYS:
            return list(range(len(claims)))
        missing = [i for i, result in enumerate(results) if result.status is Status.MISSING]
        if not missing:
            return []  # most pages: nothing for the gate to decide
        raw = render_gate.RawPage(
            status=Status.MISSING,
            http_status=fetched.status,
            is_html=True,
            truncated=fetched.truncated,
            robots_index_allowed=fetched.robots_index_allowed,
            noindex=any(Flag.NOINDEX in results[i].flags for i in missing),
        )
        targets = [claims[i].target_url for i in missing]
        page = fetched.page
        if page is not None and page.script_signs is not None and _covers(page, claims, missing):
            decision = render_gate.decide(raw, page.script_signs, targets)  # noted as the page was read
        else:
            html = decode.decode_html(final.body, final.header("content-type")).utf8
            decision = render_gate.needs_render(raw, html, targets)
        log.debug("render_gate", url=fetched.final_url, render=decision.render, why=decision.why)
        return missing if decision.render else []

    async def _rendered(
        self,
        claims: Sequence[Claim],
        results: list[Result],
        chosen: list[int],
        fetched: Fetched,
        final: Response,
        html: bytes,
    ) -> list[Result]:
        assert self._renderer is not None
        url = fetched.final_url or fetched.url
        auto = self._settings.render is RenderMode.AUTO
        targets = [urls.Target.of(claims[i].target_url, claims[i].match) for i in chosen]
        rendered = await self._renderer.render(url, html, wait_for=targets if auto else None)
        if rendered.html is None:
            return _render_failed(results, chosen)
        document = rendered.html.encode("utf-8", "surrogatepass")
        read = await self._pages.reader.read(
            document, _RENDERED_TYPE, url, index_agent=self._settings.index_agent, targets=targets
        )
        evidence = fetched.evidence
        if self._archive is not None and fetched.evidence is not None:
            evidence = (await self._archive.write_conversion(fetched.evidence, url, document)).evidence
        on_rendered = replace(fetched, page=read[0], evidence=evidence)
        judged = list(results)
        for i in chosen:
            raw_links = await self._raw_link_urls(claims[i], fetched, final)
            again = await self.decide(claims[i], on_rendered)
            if again.link is not None and again.links_matched and again.link.url not in raw_links:
                again = _flagged(again, Flag.JS_RENDERED)
            if rendered.timed_out and _missing(again):
                again = _flagged(again, Flag.RENDER_FAILED)
            judged[i] = again
        return judged

    async def _raw_link_urls(self, claim: Claim, fetched: Fetched, final: Response | None) -> set[str]:
        page = (await self._pages.reread(fetched, final, claim)).page
        return {link.url for link in page.links} if page is not None else set()


def _covers(page: Page, claims: Sequence[Claim], chosen: Sequence[int]) -> bool:
    """True when `page` was read for the targets of every claim of `chosen`."""
    return all(page.covers(urls.Target.of(claims[i].target_url, claims[i].match)) for i in chosen)


def _render_failed(results: Sequence[Result], chosen: Sequence[int]) -> list[Result]:
    """The raw verdicts, the missing ones of `chosen` flagged `render_failed` (inconclusive)."""
    return [
        _flagged(result, Flag.RENDER_FAILED) if i in chosen and _missing(result) else result
        for i, result in enumerate(results)
    ]


def _missing(result: Result) -> bool:
    return result.status is Status.MISSING


def _flagged(result: Result, flag: Flag) -> Result:
    """`result` with `flag` added, flags kept in the contract's order."""
    flags = {*result.flags, flag}
    return replace(result, flags=tuple(member for member in Flag if member in flags))
