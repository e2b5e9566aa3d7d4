"""Contract, section 8: `import crawler` gives typed values, `verify` over any iterable or async iterable
yielding results as they are decided, and a SQLite `Store` usable on its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from importlib import resources
from pathlib import Path

import pytest
from contract import TARGET, linked, settings
from servers import Server, Servers, respond

import crawler


@pytest.fixture
async def site(servers: Servers) -> Server:
    routes = {"/fast": respond(linked()), "/slow": respond(linked(), delay=1.0), "/none": respond("<p>x</p>")}
    return await servers.app(routes, host="127.0.0.7")


class TestSurface:
    def test_public_names(self) -> None:
        """`import crawler` exposes the claim, settings, result, status, flag, verify and store names."""
        for name in ("Claim", "Settings", "Result", "Status", "Flag", "verify", "Store", "verify_into"):
            assert hasattr(crawler, name), name
            assert name in crawler.__all__
        assert sorted(crawler.__all__) == list(crawler.__all__)
        assert all(hasattr(crawler, name) for name in crawler.__all__)

    def test_py_typed_ships(self) -> None:
        """The package carries its py.typed marker."""
        assert (resources.files("crawler") / "py.typed").is_file()

    def test_statuses(self) -> None:
        """Status holds the eight words of section 3, in precedence order."""
        words = ["invalid", "blocked", "unreachable", "page_error", "missing", "not_indexable", "nofollow"]
        assert [status.value for status in crawler.Status] == [*words, "verified"]

    def test_claim_is_a_checked_value(self) -> None:
        """Claims are frozen values, checked when built; the default id is stable."""
        claim = crawler.Claim("https://blog.test/post", TARGET, expected_rel="nofollow", match="prefix")
        assert claim.expected_rel is crawler.ExpectedRel.NOFOLLOW
        assert claim.match is crawler.MatchMode.PREFIX
        assert claim.id == crawler.Claim("https://blog.test/post", TARGET).id
        assert claim.id != crawler.Claim("https://blog.test/other", TARGET).id
        with pytest.raises(AttributeError):
            claim.id = "x"  # type: ignore[misc]
        bad_claims: dict[str, Callable[[], crawler.Claim]] = {
            "source_url": lambda: crawler.Claim("ftp://x.test/", TARGET),
            "target_url": lambda: crawler.Claim("https://a.test/", "not a url"),
            "expected_rel": lambda: crawler.Claim("https://a.test/", TARGET, expected_rel="followed"),
        }
        for field_name, build in bad_claims.items():
            with pytest.raises(ValueError, match=field_name):
                build()


class TestVerify:
    async def test_over_a_list(self, site: Server) -> None:
        """verify takes a list of claims (and invalid rows) and yields one result for each."""
        claims: list[crawler.Claim | crawler.InvalidClaim] = [
            crawler.Claim(site.url("/fast"), TARGET, id="a", tags={"vendor": "v"}),
            crawler.Claim(site.url("/none"), TARGET, id="b"),
            crawler.InvalidClaim("c", "", TARGET, "row 4: source_url: missing"),
        ]
        results = {result.claim_id: result async for result in crawler.verify(claims, settings())}
        assert {key: result.status for key, result in results.items()} == {
            "a": crawler.Status.VERIFIED,
            "b": crawler.Status.MISSING,
            "c": crawler.Status.INVALID,
        }
        assert results["a"].tags == {"vendor": "v"}
        assert isinstance(results["a"], crawler.Result)
        assert results["a"].to_dict()["status"] == "verified"

    async def test_over_an_async_generator(self, site: Server) -> None:
        """verify takes an async generator of claims."""

        async def claims() -> AsyncIterator[crawler.Claim]:
            for path in ("/fast", "/none"):
                await asyncio.sleep(0)
                yield crawler.Claim(site.url(path), TARGET, id=path)

        statuses = {result.claim_id: result.status async for result in crawler.verify(claims(), settings())}
        assert statuses == {"/fast": crawler.Status.VERIFIED, "/none": crawler.Status.MISSING}

    async def test_over_a_generator(self, site: Server) -> None:
        """verify takes a plain (lazy) iterator of claims."""

        def claims() -> Iterator[crawler.Claim]:
            yield crawler.Claim(site.url("/fast"), TARGET)

        results = [result async for result in crawler.verify(claims(), settings())]
        assert [result.status for result in results] == [crawler.Status.VERIFIED]

    async def test_results_as_decided(self, site: Server, servers: Servers) -> None:
        """A fast page's result is yielded while a slow page of another host is still being fetched."""
        other = await servers.app({"/fast": respond(linked())}, host="127.0.0.8")
        claims = [
            crawler.Claim(site.url("/slow"), TARGET, id="slow"),
            crawler.Claim(other.url("/fast"), TARGET),
        ]
        seen = []
        async for result in crawler.verify(claims, settings()):
            seen.append((result.claim_id, site.log.in_flight))
        assert [claim_id for claim_id, _ in seen][1] == "slow"
        assert seen[0][1] == 1  # the slow page was still being served when the first result came

    async def test_leaving_early_is_clean(self, site: Server) -> None:
        """Leaving the iteration early stops the run cleanly (no stray tasks or warnings)."""
        claims = [crawler.Claim(site.url("/fast"), TARGET), crawler.Claim(site.url("/slow"), TARGET)]
        async with aclosing(crawler.verify(claims, settings())) as results:
            async for result in results:
                assert result.status is crawler.Status.VERIFIED
                break
        await asyncio.sleep(0)
        assert not [task for task in asyncio.all_tasks() if _ours(task)]


class TestStore:
    async def test_store_on_its_own(self, site: Server, tmp_path: Path) -> None:
        """A Store keeps claims and results in a SQLite file that a later Store (or sqlite3) reads back."""
        db = tmp_path / "links.sqlite"
        claims = [crawler.Claim(site.url(path), TARGET, id=path) for path in ("/fast", "/none")]
        async with crawler.Store(db) as store:
            info = await crawler.verify_into(store, claims, settings())
        assert (info.claims, info.decided) == (2, 2)
        async with crawler.Store(db) as store:
            results = {result.claim_id: result.status async for result in store.results()}
            report = await store.report()
        assert results == {"/fast": crawler.Status.VERIFIED, "/none": crawler.Status.MISSING}
        assert report.run.by_status == {crawler.Status.MISSING: 1, crawler.Status.VERIFIED: 1}
        with sqlite3.connect(db) as connection:
            assert connection.execute("SELECT count(*) FROM results").fetchone() == (2,)

    async def test_cancelled_run_resumes(self, site: Server, tmp_path: Path) -> None:
        """Cancelling verify_into leaves the run resumable; the next call finishes it without refetching."""
        db = tmp_path / "links.sqlite"
        claims = [crawler.Claim(site.url(path), TARGET, id=path) for path in ("/fast", "/slow")]
        async with crawler.Store(db) as store:
            first = asyncio.create_task(crawler.verify_into(store, claims, settings()))
            await asyncio.sleep(0.5)  # /fast decided, /slow in flight
            assert site.log.count("/slow") == 1
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            info = await crawler.verify_into(store, None, settings())
        assert (info.claims, info.decided) == (2, 2)
        assert site.log.count("/fast") == 1


def _ours(task: asyncio.Task[object]) -> bool:
    """True for a task running the crawler's code (the test servers' tasks are not ours)."""
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and Path(code.co_filename).parent == Path(crawler.__file__).parent
