"""A page read for its claimed targets gives every claim on them the verdict a whole read gives.

`parse_page(..., targets=...)` reads only the links that may go to a target's site whole and
counts the others; these tests hold it to the whole read: the same `Result` for every claim,
on tricky hrefs written by hand and on every real page of the corpus.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.core import urls
from crawler.core.extract import parse_page
from crawler.core.verdict import decide
from crawler.models import Claim, Fetched, MatchMode, Page, Result

NOW = datetime(2026, 11, 21, tzinfo=UTC)
MODES = tuple(MatchMode)


def verdicts(page: Page, claims: list[Claim]) -> list[Result]:
    fetched = Fetched(url=page.url, status=200, final_url=page.url, page=page)
    return [decide(claim, fetched, run_id="r", now=NOW) for claim in claims]


def assert_same_verdicts(text: str, url: str, claims: list[Claim]) -> None:
    """Whole read vs one read for all the claims' targets vs one read per target."""
    whole = parse_page(text, url)
    targets = [urls.Target.of(claim.target_url, claim.match) for claim in claims]
    expected = verdicts(whole, claims)
    together = parse_page(text, url, targets=targets)
    assert verdicts(together, claims) == expected
    assert together.outbound_links == whole.outbound_links
    assert together.bot_challenge == whole.bot_challenge
    for claim, target, result in zip(claims, targets, expected, strict=True):
        alone = parse_page(text, url, targets=[target])
        assert verdicts(alone, [claim]) == [result], (claim.target_url, claim.match)


# Hrefs whose host only a WHATWG parser knows: each must count as the whole read counts it.
TRICKY_HREFS = [
    "https://money.example/offer",
    "//money.example/offer",
    " //money.example/offer",
    "\t//money.example/offer",
    "/\\money.example/offer",
    "/\t/money.example/offer",
    "\\\\money.example/offer",
    "HTTPS://MONEY.EXAMPLE/offer",
    "https:money.example/offer",
    "http:money.example/offer",
    "https://money%2Eexample/offer",
    "//money%2eexample/offer",
    "https://mon\tey.example/offer",
    "https://user@money.example/offer",
    "https://money.example@elsewhere.test/offer",
    "https://money.example:443/offer",
    "https://money.example./offer",
    "https://sub.money.example/offer",
    "https://xn--mney-8ve.example/offer",
    "https://m\u043eney.example/offer",
    "https://money\u3002example/offer",
    "https://\uff4d\uff4f\uff4e\uff45\uff59.example/offer",  # full-width letters
    "money.example/offer",
    "./money.example",
    "?q=money.example",
    "#money.example",
    "",
    "/",
    "page.html",
    "a:b",
    "1a:b",
    "java\tscript:void(0)",
    "javascript:void(0)",
    "mailto:someone@money.example",
    "tel:+1555",
    "data:text/html,hi",
    "ftp://money.example/offer",
    "https://[::1]/offer",
    "http://127.0.0.1/offer",
    "http://0x7f.1/offer",
    "https://exa mple.com/",
    "https://other.test/offer",
    "https://other.test:8443/offer",
    "//other.test",
    "HTTP://Other.Test/",
]


@pytest.mark.parametrize("base", ["", '<base href="https://money.example/dir/">', '<base href="ftp://x/">'])
@pytest.mark.parametrize("href", TRICKY_HREFS)
def test_tricky_href_among_plain_links(href: str, base: str) -> None:
    filler = "".join(
        f'<a href="/p{i}">page {i}</a> <a href="https://site{i}.test/">site {i}</a>' for i in range(8)
    )
    escaped = href.replace("&", "&amp;").replace('"', "&quot;")
    text = f'<html><head>{base}</head><body><p>{filler} <a href="{escaped}">the link</a></p></body></html>'
    targets = ["https://money.example/offer", "https://www.money.example/", "https://other.test/offer"]
    claims = [Claim("https://blog.test/post", target, match=mode) for target in targets for mode in MODES]
    assert_same_verdicts(text, "https://blog.test/post", claims)


def test_noscript_content_read_for_targets_as_for_a_whole_read() -> None:
    """Links only a `<noscript>` holds, and texts around a `<noscript>`, read for the targets come
    out as a whole read gives them (the content of a `<noscript>` in a link is read with its text)."""
    filler = "".join(f'<a href="/p{i}">page {i}</a>' for i in range(12))
    text = (
        f"<head><noscript><img src='/px.gif'></noscript></head><body>{filler}"
        '<a href="https://money.example/offer"><noscript><img alt="Money &amp; more"></noscript></a>'
        '<a href="https://other.test/"><noscript>Tom &amp; Jerry</noscript></a>'
        '<noscript><a href="https://money.example/nojs">fallback</a></noscript>'
        '<a href="https://money.example/"><noscript><img src="/l.png"></noscript> Home</a></body>'
    )
    targets = ["https://money.example/offer", "https://money.example/nojs", "https://other.test/"]
    claims = [Claim("https://blog.test/post", target, match=mode) for target in targets for mode in MODES]
    assert_same_verdicts(text, "https://blog.test/post", claims)
    offer = parse_page(text, "https://blog.test/post", targets=[urls.Target.of(targets[0], "page")])
    assert [(link.text, link.image, link.hidden) for link in offer.links] == [
        ("Money & more", True, False),
        ("fallback", False, True),
        ("Home", False, False),
    ]


def test_thin_page_is_read_for_challenges_whatever_the_targets() -> None:
    text = "<title>Just a moment...</title><p>Checking your browser</p>"
    page = parse_page(text, "https://blog.test/", targets=[urls.Target.of("https://money.example/", "page")])
    assert page.bot_challenge
    assert page.visible_text == "checking your browser"


def test_text_is_read_only_when_a_target_has_no_matching_link() -> None:
    text = '<p>see money.example and <a href="https://money.example/">this</a></p>'
    found = urls.Target.of("https://money.example/", "page")
    absent = urls.Target.of("https://gone.example/", "page")
    filler = "".join(f'<a href="/p{i}">{i}</a>' for i in range(12))
    assert parse_page(filler + text, "https://blog.test/", targets=[found]).visible_text is None
    both = parse_page(filler + text, "https://blog.test/", targets=[found, absent])
    assert both.visible_text is not None
    assert "money.example" in both.visible_text


def test_a_page_read_for_other_targets_is_refused_by_the_verdict() -> None:
    page = parse_page('<a href="https://money.example/">x</a>', "https://blog.test/", targets=[])
    with pytest.raises(ValueError, match="other targets"):
        verdicts(page, [Claim("https://blog.test/", "https://money.example/")])


def _corpus(shared: Path) -> list[tuple[str, str]]:
    """(text, URL) of every page of corpus/pages (a made-up URL) and corpus/pages-raw (its own)."""
    pages = [
        (path.read_text(encoding="utf-8-sig", errors="replace"), f"https://{path.stem}.test/a/b.html")
        for path in sorted((shared / "corpus/pages").glob("*.html"))
    ]
    index = json.loads((shared / "corpus/pages-raw/trafilatura-index.json").read_text(encoding="utf-8"))
    for entry in index["pages"]:
        text = (shared / "corpus/pages-raw" / entry["file"]).read_bytes().decode("utf-8", errors="replace")
        url = entry["url"] or ""
        pages.append((text, url if urls.problem_with_absolute_http_url(url) is None else "https://raw.test/"))
    return pages


def _claims_for(page: Page) -> list[Claim]:
    """Claims on what a page links to, or nearly: a link's exact URL, its page and a sibling in
    every mode, its site's root, plus a site it never names and its own host."""
    claims: list[Claim] = []
    seen_hosts: set[str] = set()
    for link in page.links:
        host = urls.host_key(link.url)
        if host in seen_hosts or len(seen_hosts) >= 6:
            continue
        seen_hosts.add(host)
        origin = urls.origin(link.url)
        for target in (link.url, origin + "/", origin + "/nothing-here"):
            claims.extend(Claim(page.url, target, match=mode, expected_anchor="x") for mode in MODES)
    claims.append(Claim(page.url, "https://never-linked.example/"))
    claims.append(Claim(page.url, urls.origin(page.url) + "/"))
    return claims


def test_every_corpus_page_gives_the_verdicts_of_a_whole_read(shared: Path) -> None:
    compared = 0
    for text, url in _corpus(shared):
        claims = _claims_for(parse_page(text, url))
        whole = verdicts(parse_page(text, url), claims)
        targets = [urls.Target.of(claim.target_url, claim.match) for claim in claims]
        assert verdicts(parse_page(text, url, targets=targets), claims) == whole, url
        # Alone, a target of another site: only its links are read whole.
        for claim, result in list(zip(claims, whole, strict=True))[::7]:
            alone = parse_page(text, url, targets=[urls.Target.of(claim.target_url, claim.match)])
            assert verdicts(alone, [claim]) == [result], (url, claim.target_url, claim.match)
        compared += len(claims)
    assert compared > 15_000
