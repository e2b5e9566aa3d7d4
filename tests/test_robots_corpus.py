"""robots.txt against shared data: Google's conformance suite, crawler-commons fixtures, real files."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from protego import Protego

from crawler.core.robots import RobotsPolicy

# Google expectations we answer differently on purpose, as (file, url, user agent).
ROBOTS_TXT_ALWAYS_ALLOWED = {
    ("stress/327748.textproto", "http://m.example.com/robots.txt", "asdfbot"),
    ("stress/369883.textproto", "http://example.com/robots.txt", "BarBot"),
    ("stress/369883.textproto", "http://example.com/robots.txt", "AB"),
    ("stress/860237.textproto", "http://example.com/robots.txt", "XYZ"),
}
"""RFC 9309 2.2.2: "The /robots.txt URI is implicitly allowed"; Google's matcher has no such rule."""
DIGITS_IN_TOKENS = {
    ("stress/369883.textproto", "http://example.com/", "AB42bot"),
    ("stress/369883.textproto", "http://example.com/foo/bar", "AB42bot"),
    ("stress/369883.textproto", "http://example.com/", "AB"),
}
"""Google's parser ends a user-agent value at its first digit, so `User-agent: AB42bot` is a group
for `AB`; we read the token `AB42bot` (`MJ12bot` stays `MJ12bot`, `bot1` and `bot2` stay apart)."""
PERCENT_ENCODING_BOTH_SIDES = {
    ("correctness/non-ascii-paths.textproto", "http://foo.bar/foo/bar/ツ", "FooBot"),
    ("correctness/non-ascii-paths.textproto", "http://foo.bar/foo/bar/baz", "FooBot"),
}
"""RFC 9309 2.2.2 percent-encodes both sides before comparing (its own table matches
`/foo/bar/%62%61%7A` with `/foo/bar/baz`); Google's matcher expects callers to pre-encode URLs and
does not decode patterns. Our URLs are WHATWG-serialised, so a raw `ツ` never reaches us anyway."""


def conformance_cases(shared: Path) -> list[tuple[str, bytes, str, str, bool, str]]:
    """(file, robots.txt bytes, url, user agent, allowed, test type) for every expectation."""
    suite = json.loads((shared / "corpus/robots/google-spec-test/cases.json").read_text(encoding="utf-8"))
    return [
        (case_file["file"], base64.b64decode(test["robotstxt_b64"]), e["url"], e["useragent"],
         e["expected"] == "ALLOWED", e["test_type"])
        for case_file in suite["files"]
        for test in case_file["tests"]
        for e in test["expectations"]
    ]  # fmt: skip


class TestGoogleConformance:
    def test_suite(self, shared: Path) -> None:
        """All 400 expectations hold (Google-specific ones included) but 9 documented choices."""
        cases = conformance_cases(shared)
        wrong = {
            (name, url, agent)
            for name, body, url, agent, allowed, _ in cases
            if RobotsPolicy.from_response(200, body).can_fetch(url, agent) is not allowed
        }
        assert len(cases) == 400
        assert sum(test_type == "GOOGLE_SPECIFIC" for *_, test_type in cases) == 22
        assert wrong == ROBOTS_TXT_ALWAYS_ALLOWED | DIGITS_IN_TOKENS | PERCENT_ENCODING_BOTH_SIDES

    def test_protego_alone_misses_more(self, shared: Path) -> None:
        """The wrapping earns its keep: protego on its own gets 22 of the 400 wrong."""
        wrong = sum(
            Protego.parse(body.decode("utf-8", "replace")).can_fetch(url, agent) is not allowed
            for _, body, url, agent, allowed, _ in conformance_cases(shared)
        )
        assert wrong == 22


def fixture(shared: Path, name: str) -> RobotsPolicy:
    return RobotsPolicy.from_response(200, (shared / "corpus/robots/crawler-commons" / name).read_bytes())


def check(policy: RobotsPolicy, agent: str, allowed: list[str], disallowed: list[str]) -> None:
    assert [path for path in allowed if not policy.can_fetch(f"http://example.com{path}", agent)] == []
    assert [path for path in disallowed if policy.can_fetch(f"http://example.com{path}", agent)] == []


class TestCrawlerCommonsFixtures:
    def test_rfc9309_simple_example(self, shared: Path) -> None:
        """RFC 9309 section 5.1: each agent gets its own group, an empty group allows everything."""
        rules = fixture(shared, "rfc9309-example-simple-robots.txt")
        check(rules, "foobot", ["/example/page.html", "/example/allowed.gif"], ["/", "/example/other.gif"])
        check(rules, "barbot", ["/example/other", "/a.gif"], ["/example/page.html"])
        check(rules, "bazbot", ["/example/other"], ["/example/page.html"])
        check(rules, "quxbot", ["/example/page.html", "/a.gif"], [])
        check(rules, "otherbot", ["/publications/a", "/a.gif?x=1"], ["/example/a", "/a.gif", "/x/b.gif"])

    def test_rfc9309_longest_match(self, shared: Path) -> None:
        """RFC 9309 section 5.2: the longest matching rule wins."""
        rules = fixture(shared, "rfc9309-example-longest-match-robots.txt")
        check(rules, "foobot", ["/example/page/", "/example/page/a.gif"], ["/example/page/disallowed.gif"])

    def test_rfc9309_group_merging(self, shared: Path) -> None:
        """RFC 9309 section 2.2.1: groups naming the same agent merge."""
        rules = fixture(shared, "rfc9309-example-rule-group-merging.txt")
        check(rules, "ExampleBot", ["/qux"], ["/foo", "/bar", "/baz"])
        check(rules, "BazBot", ["/foo", "/bar"], ["/baz"])
        check(rules, "otherbot", ["/baz"], ["/foo", "/bar"])

    def test_crawl_delay_group_merging(self, shared: Path) -> None:
        """A Crawl-delay between user-agent lines neither ends the group nor reaches the later agent."""
        rules = fixture(shared, "crawl-delay-group-merging.txt")
        check(rules, "mybot", ["/x"], ["/private/a"])
        check(rules, "yourbot", ["/x"], ["/private/a", "/login/a"])
        check(rules, "otherbot", ["/private/a", "/login/a"], [])
        assert (rules.crawl_delay("mybot"), rules.crawl_delay("yourbot"), rules.crawl_delay("otherbot")) == (
            10.0,
            None,
            30.0,
        )

    def test_extensions_group_merging(self, shared: Path) -> None:
        """Unknown records (Request-rate, Clean-Param, Visit-time) do not end groups."""
        rules = fixture(shared, "extensions-group-merging.txt")
        check(rules, "mybot", ["/x"], ["/private/a", "/login/a"])
        check(rules, "yourbot", ["/x"], ["/private/a", "/login/a"])
        check(rules, "otherbot", ["/llms.txt"], ["/x", "/private/a"])

    def test_merge_and_precedence(self, shared: Path) -> None:
        """Merged groups, then longest match with ties to allow."""
        merged = fixture(shared, "merge-rules.txt")
        check(merged, "wget", ["/foo/bar", "/ckh/bar", "/x"], ["/tmp/bar"])
        check(merged, "testy", [], ["/", "/x"])
        check(merged, "otherbot", ["/x", "/ckh/bar"], ["/foo/bar", "/tmp/bar"])
        precedence = fixture(shared, "precedence-of-rules.txt")
        check(precedence, "testy", ["/foo/bar", "/other"], ["/foo", "/foo/baz"])
        check(precedence, "wget", ["/foo", "/index.html"], ["/x"])

    def test_format_errors_and_typos(self, shared: Path) -> None:
        """Missing colons, spaces before colons and the usual typos are read as meant."""
        errors = fixture(shared, "format-errors-robots.txt")
        check(errors, "bot1", ["/x"], ["/whitespace-before-colon/", "/no-colon/"])
        check(errors, "bot2", ["/x"], ["/no-colon-useragent/"])
        check(errors, "bot3", ["/whitespace-before-colon"], ["/x"])
        typos = fixture(shared, "directive-typos-robots.txt")
        check(typos, "bot1", ["/desallow/"], ["/dissalow/"])
        check(typos, "bot2", ["/x"], ["/useragent/", "/useg-agent/"])
        check(typos, "bot3", ["/useg-agent/"], [])
        check(typos, "bot4", ["/x"], ["/useragent-no-colon/"])

    def test_many_user_agents(self, shared: Path) -> None:
        """380 user-agent lines share one group; values are read up to their product token."""
        rules = fixture(shared, "many-user-agents.txt")
        for agent in ("wget", "BlowFish", "bot", "FrontPage", "webfetch", "toCrawl"):
            check(rules, agent, [], ["/", "/x"])
        check(rules, "Googlebot", ["/x"], ["/forum/", "/lang/de/forum/"])
        check(rules, "backlink-crawler", ["/x"], ["/forum/"])

    def test_real_site_files(self, shared: Path) -> None:
        """Real files from twitter.com, amazon.com, astore.amazon.com and flot.com."""
        twitter = fixture(shared, "twitter.com-robots.txt")
        check(twitter, "Googlebot", ["/jack"], ["/search?q=x", "/jack/with_friends"])
        assert (twitter.crawl_delay("Googlebot"), twitter.crawl_delay("Slurp"), twitter.crawl_delay("x")) == (
            None,
            1.0,
            None,
        )
        assert fixture(shared, "astore.amazon.com-robots.txt").crawl_delay("backlink-crawler") == 5.0
        check(fixture(shared, "www.flot.com-robots.txt"), "x", ["/lang/de/"], ["/admin/", "/img/a.png"])
        amazon = fixture(shared, "wildcards.txt")
        check(amazon, "backlink-crawler", ["/dp/123", "/wishlist/universal/1"], ["/gp/cart", "/dp/shipping/"])
        check(amazon, "Googlebot", ["/dp/123"], ["/gp/cart", "/rss/people/joe/reviews"])

    @pytest.mark.parametrize(
        "name", ["robots-with-utf8-bom.txt", "robots-with-utf16le-bom.txt", "robots-with-utf16be-bom.txt"]
    )
    def test_byte_order_marks(self, shared: Path, name: str) -> None:
        """UTF-8, UTF-16LE and UTF-16BE files with a BOM are read."""
        check(fixture(shared, name), "backlink-crawler", ["/index.html"], ["/login.aspx", "/profile/me"])

    def test_line_endings_and_malformed_paths(self, shared: Path) -> None:
        """CRLF files keep their Crawl-delay; a malformed escape in a path does not break matching."""
        assert fixture(shared, "dos-line-endings.txt").crawl_delay("x") == 1.0
        check(
            fixture(shared, "malformed-path.txt"),
            "x",
            ["/wiki/Main_Page"],
            ["/wiki/Wikipedia_talk:Mediation_Committee/a", "/wiki/Wikipedia_talk%3Mediation_Committee/a"],
        )


class TestRealFiles:
    PATHS = ("/", "/index.html", "/search?q=x", "/products/item-1", "/blog/2020/01/post", "/wp-admin/")

    def test_every_real_file_parses_fast(self, shared: Path) -> None:
        """All 4,231 real robots.txt responses parse and answer without raising, in well under 20 s."""
        files = sorted((shared / "corpus/robots/real").iterdir())
        start = time.perf_counter()
        for path in files:
            rules = RobotsPolicy.from_response(200, path.read_bytes())
            for agent in ("backlink-crawler", "Googlebot"):
                for url_path in self.PATHS:
                    assert isinstance(rules.can_fetch(f"https://example.com{url_path}", agent), bool)
                rules.crawl_delay(agent)
        elapsed = time.perf_counter() - start
        assert len(files) == 4231
        assert elapsed < 20, f"{elapsed:.1f} s"

    @pytest.mark.slow  # every real file through both parsers, every path: ~4 s
    def test_differences_from_protego_alone(self, shared: Path) -> None:
        """On real files our answers differ from plain protego's only where protego breaks RFC 9309.

        protego is given the text with its UTF-8 BOM removed, as the RFC asks (3 files have one).
        bitbucket.org then remains: `User-Agent: *`, `Crawl-delay: 120`, `User-agent: 008`,
        `Disallow: /` is one group, so `*` shares `Disallow: /` (Google reads it so too).
        """
        differ = set()
        for path in sorted((shared / "corpus/robots/real").iterdir()):
            body = path.read_bytes()[: 500 * 1024]
            ours = RobotsPolicy.from_response(200, body)
            theirs = Protego.parse(body.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace"))
            for agent in ("backlink-crawler", "Googlebot"):
                for url in (f"https://example.com{url_path}" for url_path in self.PATHS):
                    if ours.can_fetch(url, agent) is not theirs.can_fetch(url, agent):
                        differ.add(path.name)
        assert differ == {"bitbucket.org.txt"}
