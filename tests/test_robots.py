"""robots.txt policy: status semantics, exact group choice, rule precedence, size cap, encodings."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protego import Protego

from crawler.core.robots import ROBOTS_MAX_BYTES, RobotsPolicy

US = "backlink-crawler"
SITE = "https://example.com"


def policy(text: str) -> RobotsPolicy:
    return RobotsPolicy.from_response(200, text.encode("utf-8"))


class TestStatus:
    @pytest.mark.parametrize("status", [200, 203, 206])
    def test_2xx_is_parsed(self, status: int) -> None:
        """A 2xx answer's rules apply."""
        rules = RobotsPolicy.from_response(status, b"User-agent: *\nDisallow: /private\n")
        assert not rules.unavailable
        assert not rules.can_fetch(f"{SITE}/private/x", US)
        assert rules.can_fetch(f"{SITE}/public", US)

    @pytest.mark.parametrize("status", [300, 301, 308, 400, 401, 403, 404, 410, 451, 499])
    def test_4xx_and_exhausted_redirects_allow_all(self, status: int) -> None:
        """4xx other than 429 (and a redirect the fetcher stopped following) allow everything."""
        rules = RobotsPolicy.from_response(status, b"User-agent: *\nDisallow: /\n")
        assert not rules.unavailable
        assert rules.can_fetch(f"{SITE}/anything", US)
        assert rules.crawl_delay(US) is None

    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599, 0, 100, 199, 600])
    def test_429_5xx_and_nonsense_disallow_all(self, status: int) -> None:
        """429, 5xx and statuses that are no answer mean robots.txt is unavailable: disallow everything."""
        rules = RobotsPolicy.from_response(status, b"User-agent: *\nAllow: /\n")
        assert rules.unavailable
        assert not rules.can_fetch(f"{SITE}/", US)
        assert not rules.can_fetch(f"{SITE}/robots.txt", "Googlebot")

    def test_constructors(self) -> None:
        """allow_all allows everything; unavailable_policy disallows everything and says why."""
        assert RobotsPolicy.allow_all().can_fetch(f"{SITE}/x", US)
        assert not RobotsPolicy.allow_all().unavailable
        assert not RobotsPolicy.unavailable_policy().can_fetch(f"{SITE}/x", US)
        assert RobotsPolicy.unavailable_policy().unavailable

    def test_empty_file_allows_all(self) -> None:
        """An empty 200 robots.txt allows everything."""
        assert RobotsPolicy.from_response(200, b"").can_fetch(f"{SITE}/x", US)


class TestGroupChoice:
    @pytest.mark.parametrize(
        "agent_line",
        [
            "User-agent: crawler",
            "User-agent: backlink",
            "User-agent: backlink-crawler-pro",
            "User-agent: link-crawler",
            "User-agent: backlinkcrawler",
            "User-agent: backlink-crawler2",
        ],
    )
    def test_substring_groups_do_not_apply(self, agent_line: str) -> None:
        """A group whose token merely occurs in (or extends) ours does not apply: the `*` group does."""
        rules = policy(f"{agent_line}\nDisallow: /\n\nUser-agent: *\nDisallow: /star-only\n")
        assert rules.can_fetch(f"{SITE}/page", US)
        assert not rules.can_fetch(f"{SITE}/star-only", US)

    def test_protego_alone_would_apply_a_prefix_group(self) -> None:
        """The guard is needed: protego by itself applies `User-agent: backlink` to backlink-crawler."""
        text = "User-agent: backlink\nDisallow: /\n"
        assert not Protego.parse(text).can_fetch(f"{SITE}/page", US)
        assert policy(text).can_fetch(f"{SITE}/page", US)

    @pytest.mark.parametrize(
        "agent_line",
        [
            "User-agent: backlink-crawler",
            "User-Agent: BACKLINK-CRAWLER",
            "user-agent:backlink-crawler",
            "User-agent: backlink-crawler/1.0",
            "User-agent: backlink-crawler (+https://example.org)",
            "useragent: backlink-crawler",
            "User agent backlink-crawler",
            "User-agent backlink-crawler  # our bot",
        ],
    )
    def test_our_group_applies_exclusively(self, agent_line: str) -> None:
        """A group naming our product token, in any case or spelling, applies instead of `*`."""
        rules = policy(f"User-agent: *\nDisallow: /\n\n{agent_line}\nDisallow: /private\n")
        assert rules.can_fetch(f"{SITE}/page", US)
        assert not rules.can_fetch(f"{SITE}/private", US)

    def test_agents_are_compared_case_insensitively(self) -> None:
        """The agent we ask for is matched case-insensitively too."""
        rules = policy("User-agent: Googlebot\nDisallow: /g\n")
        assert not rules.can_fetch(f"{SITE}/g", "GOOGLEBOT")
        assert not rules.can_fetch(f"{SITE}/g", " googlebot ")

    def test_index_agent_is_not_its_variants(self) -> None:
        """Googlebot-Image's group does not apply to Googlebot, nor Googlebot's to Googlebot-News."""
        rules = policy("User-agent: Googlebot-Image\nDisallow: /img\n\nUser-agent: Googlebot\nDisallow: /g\n")
        assert rules.can_fetch(f"{SITE}/img", "Googlebot")
        assert not rules.can_fetch(f"{SITE}/g", "Googlebot")
        assert rules.can_fetch(f"{SITE}/g", "Googlebot-News")
        assert not rules.can_fetch(f"{SITE}/img", "Googlebot-Image")

    def test_groups_with_the_same_agent_merge(self) -> None:
        """Rules of every group naming our token are combined (RFC 9309 2.2.1)."""
        rules = policy(
            f"User-agent: {US}\nDisallow: /a\n\nUser-agent: *\nDisallow: /b\n\n"
            f"User-agent: {US}\nDisallow: /c\n"
        )
        assert not rules.can_fetch(f"{SITE}/a", US)
        assert rules.can_fetch(f"{SITE}/b", US)
        assert not rules.can_fetch(f"{SITE}/c", US)

    def test_several_agents_share_a_group(self) -> None:
        """Consecutive user-agent lines open one group, even with a Crawl-delay between them."""
        rules = policy(f"User-agent: otherbot\nCrawl-delay: 5\nUser-agent: {US}\nDisallow: /shared\n")
        assert not rules.can_fetch(f"{SITE}/shared", US)
        assert not rules.can_fetch(f"{SITE}/shared", "otherbot")
        assert rules.crawl_delay("otherbot") == 5.0

    def test_a_crawl_delay_does_not_end_a_group(self) -> None:
        """`*`, Crawl-delay, then another agent and its rules: one group, as RFC 9309 and Google read it."""
        rules = policy("User-agent: *\nCrawl-delay: 120\n\nUser-agent: badbot\nDisallow: /\n")
        assert not rules.can_fetch(f"{SITE}/page", US)
        assert rules.crawl_delay(US) == 120.0
        assert rules.crawl_delay("badbot") is None

    def test_token_is_the_leading_name(self) -> None:
        """A value names the run of letters, digits, '-' and '_' it starts with, digits included."""
        rules = policy("User-agent: AB42bot\nDisallow: /\n\nUser-agent: Googlebot/2.1\nDisallow: /g\n")
        assert rules.can_fetch(f"{SITE}/x", "AB")
        assert not rules.can_fetch(f"{SITE}/x", "AB42bot")
        assert not rules.can_fetch(f"{SITE}/g", "Googlebot")

    def test_no_matching_group_allows_all(self) -> None:
        """Without our group and without `*`, everything is allowed."""
        rules = policy("User-agent: otherbot\nDisallow: /\n")
        assert rules.can_fetch(f"{SITE}/x", US)
        assert rules.crawl_delay(US) is None

    def test_a_wildcard_agent_value_names_nobody(self) -> None:
        """`User-agent: *bot` is not the `*` group; `* ` followed by text is."""
        assert policy("User-agent: *bot\nDisallow: /\n").can_fetch(f"{SITE}/x", US)
        assert not policy("User-agent: * all robots\nDisallow: /\n").can_fetch(f"{SITE}/x", US)

    def test_full_user_agent_header_is_not_a_token(self) -> None:
        """Callers pass the product token: a full header is compared whole and finds no group."""
        rules = policy(f"User-agent: {US}\nDisallow: /\n")
        assert rules.can_fetch(f"{SITE}/x", f"{US}/0.1 (+https://example.org)")


class TestRules:
    @pytest.mark.parametrize(
        ("rules_text", "path", "allowed"),
        [
            ("Disallow: /fish", "/fish.html", False),
            ("Disallow: /fish", "/Fish.asp", True),
            ("Disallow: /fish/", "/fish", True),
            ("Disallow: /*.php$", "/a/b.php", False),
            ("Disallow: /*.php$", "/a/b.php?x=1", True),
            ("Disallow: /*.php", "/a/b.php?x=1", False),
            ("Disallow: /fish*.php", "/fishheads/catfish.php?p", False),
            ("Allow: /p\nDisallow: /", "/page", True),
            ("Allow: /page\nDisallow: /*.html", "/page.html", False),
            ("Allow: /folder\nDisallow: /folder", "/folder/x", True),
            ("Allow: /$\nDisallow: /", "/", True),
            ("Allow: /$\nDisallow: /", "/x", False),
            ("Disallow: /~joe", "/%7Ejoe/index.html", False),
            ("Disallow: /%7ejoe", "/~joe/index.html", False),
            ("Disallow: /caf%C3%A9", "/caf%c3%a9", False),
            ("Disallow: /café", "/caf%C3%A9", False),
            ("Disallow: /a%2Fb", "/a/b", True),
            ("Disallow: /q?s=", "/q?s=1", False),
            ("Disallow:", "/anything", True),
            ("Disallow: /", "/robots.txt", True),
        ],
    )
    def test_rule_matching(self, rules_text: str, path: str, allowed: bool) -> None:
        """Longest match wins, ties go to allow, `*` and `$` work, percent-encoding is normalised."""
        rules = policy(f"User-agent: *\n{rules_text}\n")
        assert rules.can_fetch(f"{SITE}{path}", US) is allowed

    def test_rules_apply_to_path_not_host(self) -> None:
        """The scheme, host and fragment of the URL never take part in matching."""
        rules = policy("User-agent: *\nDisallow: /x\n")
        assert not rules.can_fetch("http://other.example:8080/x#frag", US)
        assert rules.can_fetch("https://x.example/y#/x", US)

    def test_malformed_url_is_not_fetched(self) -> None:
        """A URL too broken to match rules against is refused rather than raising."""
        assert not policy("User-agent: *\nDisallow: /x\n").can_fetch("http://[::1/x", US)


class TestCrawlDelay:
    def test_delay_of_our_group(self) -> None:
        """Crawl-delay comes from the group that applies to the agent, each agent keeping its own."""
        rules = policy(f"User-agent: *\nCrawl-delay: 10\n\nUser-agent: {US}\nCrawl-delay: 2.5\nDisallow:\n")
        assert rules.crawl_delay(US) == 2.5
        assert rules.crawl_delay("Googlebot") == 10.0

    def test_delay_after_rules_covers_the_group(self) -> None:
        """A Crawl-delay below a group's rules applies to every agent of the group."""
        rules = policy(f"User-agent: otherbot\nUser-agent: {US}\nDisallow: /x\nCrawl-delay: 4\n")
        assert rules.crawl_delay(US) == rules.crawl_delay("otherbot") == 4.0
        assert rules.crawl_delay("Googlebot") is None

    @pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", ""])
    def test_bad_delay_is_ignored(self, value: str) -> None:
        """A Crawl-delay that is not a finite non-negative number is ignored."""
        assert policy(f"User-agent: *\nCrawl-delay: {value}\n").crawl_delay(US) is None


class TestSizeAndEncoding:
    def test_rule_after_500_kib_is_not_seen(self) -> None:
        """Only the first 500 KiB are parsed: a rule past them does not apply."""
        padding = ("# " + "x" * 97 + "\n") * (ROBOTS_MAX_BYTES // 100 + 1)
        body = f"User-agent: *\nDisallow: /early\n{padding}Disallow: /late\n".encode()
        rules = RobotsPolicy.from_response(200, body)
        assert len(body) > ROBOTS_MAX_BYTES
        assert not rules.can_fetch(f"{SITE}/early", US)
        assert rules.can_fetch(f"{SITE}/late", US)
        assert not RobotsPolicy.from_response(200, body, max_bytes=len(body)).can_fetch(f"{SITE}/late", US)

    def test_custom_max_bytes(self) -> None:
        """max_bytes cuts the body where the caller says."""
        body = b"User-agent: *\nDisallow: /a\nDisallow: /b\n"
        rules = RobotsPolicy.from_response(200, body, max_bytes=body.index(b"Disallow: /b"))
        assert not rules.can_fetch(f"{SITE}/a", US)
        assert rules.can_fetch(f"{SITE}/b", US)

    @pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b"\xef\xbb", b"\xef"])
    def test_utf8_bom_and_its_fragments_are_skipped(self, bom: bytes) -> None:
        """A UTF-8 BOM, or the start of one, does not spoil the first line."""
        rules = RobotsPolicy.from_response(200, bom + f"User-agent: {US}\nDisallow: /x\n".encode())
        assert not rules.can_fetch(f"{SITE}/x", US)

    @pytest.mark.parametrize(
        ("bom", "codec"), [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")]
    )
    def test_utf16_with_bom_is_read(self, bom: bytes, codec: str) -> None:
        """A UTF-16 file with a byte-order mark is decoded as UTF-16 and its rules apply."""
        rules = RobotsPolicy.from_response(200, bom + "User-agent: *\r\nDisallow: /x\r\n".encode(codec))
        assert not rules.can_fetch(f"{SITE}/x", US)
        assert rules.can_fetch(f"{SITE}/y", US)

    def test_invalid_utf8_does_not_hide_other_rules(self) -> None:
        """Bytes that are not UTF-8 are replaced; the lines around them still apply."""
        body = b"User-agent: *\nDisallow: /caf\xe9\nDisallow: /next\n"
        assert not RobotsPolicy.from_response(200, body).can_fetch(f"{SITE}/next", US)

    @pytest.mark.parametrize("ending", ["\r\n", "\r", "\n"])
    def test_line_endings(self, ending: str) -> None:
        """CRLF, CR and LF line endings all separate lines."""
        rules = policy(
            ending.join(["User-agent: *", "Disallow: /a", "", f"User-agent: {US}", "Disallow: /b"])
        )
        assert rules.can_fetch(f"{SITE}/a", US)
        assert not rules.can_fetch(f"{SITE}/b", US)


class TestNeverRaises:
    @settings(max_examples=200, deadline=None)
    @given(body=st.binary(max_size=2048), status=st.integers(min_value=-1, max_value=1000))
    def test_any_bytes(self, body: bytes, status: int) -> None:
        """Any status and body give a policy that answers without raising."""
        rules = RobotsPolicy.from_response(status, body)
        assert isinstance(rules.can_fetch(f"{SITE}/a/b?c", US), bool)
        rules.crawl_delay(US)

    @settings(max_examples=200, deadline=None)
    @given(
        lines=st.lists(
            st.sampled_from(
                [
                    *("User-agent: *", f"User-agent: {US}", "user agent backlink", "useragent:", "Allow: /"),
                    *("Disallow: /x*$", "Disallow", "Crawl-delay: 3", "Sitemap: /s.xml", "# c", "", "<br />"),
                    *("foo: bar", "Disallow: /%zz", "Allow: *", "Disallow: $"),
                ]
            ),
            max_size=30,
        ),
        url=st.text(max_size=30),
    )
    def test_any_lines_and_urls(self, lines: list[str], url: str) -> None:
        """Any mix of directives, and any URL string, gives an answer instead of an exception."""
        rules = policy("\n".join(lines))
        assert isinstance(rules.can_fetch(url, US), bool)
        assert isinstance(rules.can_fetch(f"{SITE}/{url}", "Googlebot"), bool)
