"""The shared value types: claims validate themselves, results round-trip through dicts."""

from __future__ import annotations

import pytest

from crawler.errors import ClaimError
from crawler.models import (
    Claim,
    ExpectedRel,
    Flag,
    Link,
    MatchMode,
    Redirect,
    Region,
    Result,
    Status,
    claim_key,
)


class TestClaim:
    def test_defaults_and_coercion(self) -> None:
        """Strings for rel and match become enums; the id defaults to a hash of both URLs."""
        claim = Claim("https://a.com/p", "https://t.com/", expected_rel=" Follow ", match="PREFIX")
        assert claim.expected_rel is ExpectedRel.FOLLOW
        assert claim.match is MatchMode.PREFIX
        assert claim.id == claim_key("https://a.com/p", "https://t.com/")

    def test_dofollow_is_follow(self) -> None:
        """`dofollow`, the word many vendors use, is accepted as `follow`."""
        assert (
            Claim("https://a.com/", "https://t.com/", expected_rel="DoFollow").expected_rel
            is ExpectedRel.FOLLOW
        )

    def test_id_is_stable_and_given_ids_win(self) -> None:
        """The default id depends on the URLs alone; a user's id is kept."""
        assert Claim("https://a.com/", "https://t.com/").id == Claim("https://a.com/", "https://t.com/").id
        assert Claim("https://a.com/", "https://t.com/", id="row-7").id == "row-7"

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"source_url": "", "target_url": "https://t.com/"}, "source_url"),
            ({"source_url": "https://a.com/", "target_url": "mailto:x@t.com"}, "target_url"),
            ({"source_url": "https://a.com/", "target_url": "https://t.com/", "match": "fuzzy"}, "match"),
            (
                {"source_url": "https://a.com/", "target_url": "https://t.com/", "expected_rel": "do-follow"},
                "expected_rel",
            ),
        ],
    )
    def test_bad_claims_name_the_field(self, kwargs: dict[str, str], field: str) -> None:
        """An unusable claim raises ClaimError naming the field."""
        with pytest.raises(ClaimError) as error:
            Claim(**kwargs)  # type: ignore[arg-type]
        assert error.value.field == field

    @pytest.mark.parametrize(
        ("kwargs", "field", "problem"),
        [
            ({"source_url": "https://a.com/p\x00"}, "source_url", "contains a NUL byte"),
            ({"id": "row\x007"}, "id", "contains a NUL byte"),
            ({"id": "row\udc807"}, "id", "not valid UTF-8"),
            ({"expected_anchor": "caf\ud800"}, "expected_anchor", "not valid UTF-8"),
            ({"tags": {"vendor": "acme\x00"}}, "tags", "contains a NUL byte"),
            ({"tags": {"vend\udfffor": "acme"}}, "tags", "not valid UTF-8"),
        ],
    )
    def test_text_no_database_stores_names_the_field(
        self, kwargs: dict[str, object], field: str, problem: str
    ) -> None:
        """A NUL or a lone surrogate (a library caller's; a file's rows are screened when read)
        raises ClaimError naming the field: SQLite raised UnicodeEncodeError on a surrogate and
        a foreign key error on a NUL in an id, PostgreSQL refused the whole import."""
        given: dict[str, object] = {"source_url": "https://a.com/", "target_url": "https://t.com/", **kwargs}
        with pytest.raises(ClaimError) as error:
            Claim(**given)  # type: ignore[arg-type]
        assert (error.value.field, error.value.problem) == (field, problem)


class TestResult:
    def test_round_trip(self) -> None:
        """from_dict(to_dict(r)) == r for a result with every field set."""
        result = Result(
            claim_id="c1",
            source_url="https://a.com/",
            target_url="https://t.com/",
            tags={"vendor": "acme"},
            run_id="r1",
            checked_at="2026-11-21T19:00:00Z",
            status=Status.NOFOLLOW,
            reason=None,
            flags=(Flag.SPONSORED, Flag.SOURCE_REDIRECTED),
            http_status=200,
            final_url="https://a.com/final",
            redirects=(Redirect("https://a.com/", 301), Redirect("https://a.com/r", None)),
            content_type="text/html",
            encoding="utf-8",
            bytes=1234,
            elapsed_ms=56,
            attempts=1,
            robots_crawler_allowed=True,
            robots_index_allowed=True,
            meta_robots=("nofollow",),
            x_robots_tag=(),
            canonical_url="https://a.com/final",
            indexable=True,
            link=Link("/t", "https://t.com/", "T", ("sponsored",), False, Region.MAIN),
            links_matched=1,
            outbound_links=3,
        )
        assert Result.from_dict(result.to_dict()) == result

    def test_contract_field_names(self) -> None:
        """The output record has exactly the contract's fields."""
        result = Result("c", "https://a.com/", "https://t.com/", {}, "r", "t", Status.MISSING)
        assert list(result.to_dict()) == [
            "claim_id", "source_url", "target_url", "tags", "run_id", "checked_at", "state",
            "body_sha256", "status", "reason", "flags", "http_status", "final_url", "redirects",
            "content_type", "encoding", "bytes", "elapsed_ms", "attempts", "robots_crawler_allowed",
            "robots_index_allowed", "meta_robots", "x_robots_tag", "canonical_url", "indexable", "link",
            "links_matched", "outbound_links", "evidence",
        ]  # fmt: skip
