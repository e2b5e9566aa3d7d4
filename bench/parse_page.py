"""CPU milliseconds per real page from body bytes to verdicts, beside the least any verifier does.

For every page of ../shared/corpus/pages, the work the crawler does once a body has arrived:

- decode: `decode.decode_html`, with the `Content-Type` a server sends (`--no-charset`: none, so
  the prescan and detection decide);
- parse: `extract.parse_page` for the claims' targets, as the engine reads a 2xx page (links that
  may go to a target read whole, the others counted; robots metas, canonical, refresh...);
- verdict: `verdict.decide` for two claims, as on the shared benchmark's site: one whose link was
  injected into the content (verified), one whose link is absent (missing: the costlier path,
  with the same-site scan and the unlinked-mention search).

Beside it the `limit` row of the shared benchmark: one Lexbor parse of the bytes, `a[href]`, the
WHATWG resolution of each href compared with the claimed targets. Each page is timed `--rounds`
times (ours and the limit alternating) and its fastest round kept (the machine is shared: the
minimum is the least noisy), then the median is taken over the pages of each size band.

    .venv/bin/python bench/parse_page.py
    .venv/bin/python bench/parse_page.py --rounds 9 --stages     # also time each stage of parse_page
    .venv/bin/python bench/parse_page.py --profile 30            # cProfile: the 30 costliest functions

Without ../shared (a plain clone) it says so in one line and exits 0: nothing was measured, and
nothing failed. A `--pages` directory without .html files is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from ada_url import join_url
from selectolax.lexbor import LexborHTMLParser

from crawler.core import decode, extract, urls, verdict
from crawler.models import Claim, Fetched, Status

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pages"
PAGE_URL = "http://127.0.1.1:18080/p1.html"
FOUND = "https://money1.example/offer/1"
ABSENT = "https://money2.example/offer/2"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
BANDS = (
    ("all pages", 0, 1 << 40),
    ("~100 KB (75-135 KB)", 75_000, 135_000),
    ("under 10 KB", 0, 10_000),
    ("over 500 KB", 500_000, 1 << 40),
)
STAGES = ("decode", "parse", "verdict")


def with_claimed_link(html: str) -> bytes:
    """The page with a link to `FOUND` after a `</p>` two thirds down (else at the end), as UTF-8."""
    lowered = html.lower()
    ends = []
    at = lowered.find("</p>")
    while at >= 0:
        ends.append(at + 4)
        at = lowered.find("</p>", at + 4)
    cut = ends[(2 * len(ends)) // 3] if ends else len(html)
    return (html[:cut] + f' <a href="{FOUND}">our offer</a> ' + html[cut:]).encode("utf-8", "replace")


CLAIMS = (Claim(PAGE_URL, FOUND), Claim(PAGE_URL, ABSENT))
TARGETS = [urls.Target.of(claim.target_url, claim.match) for claim in CLAIMS]


def ours(body: bytes, content_type: str) -> tuple[float, float, float]:
    """Seconds spent decoding, parsing and judging both claims of one page."""
    start = time.thread_time()
    decoded = decode.decode_html(body, content_type)
    decoded_at = time.thread_time()
    page = extract.parse_page(decoded.utf8, PAGE_URL, targets=TARGETS)
    parsed_at = time.thread_time()
    fetched = Fetched(
        url=PAGE_URL,
        status=200,
        final_url=PAGE_URL,
        headers=(("content-type", content_type),),
        content_type=content_type,
        encoding=decoded.encoding,
        bytes=len(body),
        robots_crawler_allowed=True,
        robots_index_allowed=True,
        page=page,
    )
    results = [verdict.decide(claim, fetched, run_id="bench", now=NOW) for claim in CLAIMS]
    done = time.thread_time()
    assert results[1].status is Status.MISSING
    return decoded_at - start, parsed_at - decoded_at, done - parsed_at


def limit(body: bytes) -> float:
    """Seconds of the floor: parse, select anchors, resolve each href, compare with the targets."""
    start = time.thread_time()
    targets = {FOUND, ABSENT}
    found = 0
    for anchor in LexborHTMLParser(body).css("a[href]"):
        try:  # noqa: SIM105 (a context manager per link would slow the floor measured here)
            found += join_url(PAGE_URL, anchor.attributes.get("href") or "") in targets
        except ValueError:
            pass
    return time.thread_time() - start


def fastest(body: bytes, content_type: str, rounds: int) -> tuple[tuple[float, ...], float]:
    """The fastest of `rounds` runs of each stage and of the limit, in milliseconds, interleaved
    so that a busy moment of the machine slows both alike."""
    best = [float("inf")] * len(STAGES)
    floor = float("inf")
    for _ in range(rounds):
        best = [min(old, new) for old, new in zip(best, ours(body, content_type), strict=True)]
        floor = min(floor, limit(body))
    return tuple(seconds * 1000 for seconds in best), floor * 1000


def stages(text: str) -> dict[str, float]:
    """Milliseconds of each step of `parse_page` on one page (one run; for finding hot spots).

    It repeats `extract.parse_page` step by step through its private functions: mypy (which
    checks bench/) says when they change and this copy must follow.
    """
    marks = {}
    start = time.thread_time()
    data = text.encode("utf-8", "surrogatepass")
    tree = LexborHTMLParser(data, scripting=True)
    marks["lexbor parse"] = time.thread_time()
    elements = extract._gather(tree)
    marks["select"] = time.thread_time()
    base_url = extract._base_url(elements.base_href, PAGE_URL, "utf-8")
    base = extract._Base.of(base_url, urls.host_key(PAGE_URL), "utf-8")
    indexed = extract._indexed_count(data, len(elements.hrefs))
    extract._links(elements, base, indexed, extract._names(TARGETS, base_url))
    marks["links"] = time.thread_time()
    extract._meta_robots(elements.metas, "Googlebot")
    extract._canonical(tree.head, base)
    extract._refresh_url(elements.metas, base)
    marks["metas"] = time.thread_time()
    extract._visible_text(tree)
    marks["visible text"] = time.thread_time()
    spent = {}
    for name, mark in marks.items():
        spent[name] = (mark - start) * 1000
        start = mark
    return spent


def report(sizes: list[int], timings: list[tuple[tuple[float, ...], float]]) -> None:
    print(f"{'pages':<22}{'n':>4}{'med KB':>7}", *(f"{name:>8}" for name in STAGES), sep="", end="")
    print(f"{'total':>8}{'limit':>8}{'ratio':>7}   (ms per page, medians)")
    for name, low, high in BANDS:
        chosen = [i for i, size in enumerate(sizes) if low <= size < high]
        if not chosen:
            continue
        kb = statistics.median(sizes[i] for i in chosen) / 1000
        parts = [statistics.median(timings[i][0][s] for i in chosen) for s in range(len(STAGES))]
        total = statistics.median(sum(timings[i][0]) for i in chosen)
        floor = statistics.median(timings[i][1] for i in chosen)
        print(f"{name:<22}{len(chosen):>4}{kb:>7.0f}", *(f"{ms:>8.2f}" for ms in parts), sep="", end="")
        print(f"{total:>8.2f}{floor:>8.2f}{total / floor:>7.2f}")
    spent = [sum(sum(ms) for ms, _ in timings), sum(floor for _, floor in timings)]
    by_stage = ", ".join(f"{n} {sum(t[0][s] for t in timings):.0f}" for s, n in enumerate(STAGES))
    print(f"\nsum over all pages: ours {spent[0]:.0f} ms ({by_stage}), limit {spent[1]:.0f} ms, ", end="")
    print(f"ratio {spent[0] / spent[1]:.2f}")


def profile(bodies: list[bytes], content_type: str, top: int) -> None:
    """cProfile of the whole work over every page, the `top` functions by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [ours(body, content_type) for body in bodies])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=Path, default=CORPUS, help="directory of .html pages")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per page (fastest kept)")
    parser.add_argument("--no-charset", action="store_true", help="no charset in the Content-Type")
    parser.add_argument("--stages", action="store_true", help="also show where parse_page spends its time")
    parser.add_argument("--profile", type=int, metavar="N", help="print a cProfile top N instead")
    args = parser.parse_args()
    paths = sorted(args.pages.glob("*.html"))
    if not paths and args.pages == CORPUS:
        # The corpus ships beside the project, not inside it: a plain clone has none, and that is no
        # failure of the benchmark (exit 0, so `make bench` goes on with the scripts that need nothing).
        print("parse_page: skipped: no ../shared/corpus/pages beside the project (give --pages DIR)")
        return
    if not paths:
        parser.error(f"--pages {args.pages}: no .html files there")
    content_type = "text/html" if args.no_charset else "text/html; charset=utf-8"
    texts = [path.read_text(encoding="utf-8-sig", errors="replace") for path in paths]
    bodies = [with_claimed_link(text) for text in texts]
    if args.profile:
        profile(bodies, content_type, args.profile)
        return
    timings = [fastest(body, content_type, args.rounds) for body in bodies]
    print(f"{len(bodies)} pages from {args.pages}, fastest of {args.rounds} rounds per page")
    print(f"Content-Type: {content_type}\n")
    report([len(body) for body in bodies], timings)
    if args.stages:
        totals: dict[str, float] = {}
        for text in texts:
            for name, spent in stages(text).items():
                totals[name] = totals.get(name, 0.0) + spent
        print("\nparse_page stage totals over all pages (one run each):")
        for name, spent in totals.items():
            print(f"  {name:<14}{spent:>8.1f} ms")


if __name__ == "__main__":
    main()
