"""Milliseconds per page of `crawler.extract.parse_page` on the real pages of ../shared/corpus/pages.

Beside it, the least any extractor does with the same libraries (the `limit` row of the shared
benchmark): one Lexbor parse, `a[href]`, WHATWG resolution of each href. Each page is timed
`--rounds` times (the two alternating) and its fastest round kept (the machine is shared: the
minimum is the least noisy), then the median is taken over the pages of each size band.

    .venv/bin/python bench/parse_page.py
    .venv/bin/python bench/parse_page.py --rounds 9 --stages     # also time each stage
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ada_url import join_url
from selectolax.lexbor import LexborHTMLParser

from crawler import extract

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pages"
PAGE_URL = "http://fakehost/test/page.html"
BANDS = (
    ("all pages", 0, 1 << 40),
    ("~100 KB (75-135 KB)", 75_000, 135_000),
    ("under 10 KB", 0, 10_000),
    ("over 500 KB", 500_000, 1 << 40),
)


def limit(text: str, url: str) -> int:
    """The floor: parse, select anchors, resolve each href (what the shared benchmark's limit does)."""
    found = 0
    for anchor in LexborHTMLParser(text).css("a[href]"):
        try:
            join_url(url, anchor.attributes.get("href") or "")
            found += 1
        except ValueError:
            pass
    return found


def fastest(works: tuple[Callable[[], object], ...], rounds: int) -> list[float]:
    """The fastest of `rounds` runs of each of `works`, in milliseconds; runs interleaved, so that
    a busy moment of the machine slows all of them alike."""
    best = [float("inf")] * len(works)
    for _ in range(rounds):
        for i, work in enumerate(works):
            start = time.perf_counter()
            work()
            best[i] = min(best[i], time.perf_counter() - start)
    return [seconds * 1000 for seconds in best]


def stages(text: str) -> dict[str, float]:
    """Milliseconds of each step of `parse_page` on one page (one run; for finding hot spots)."""
    marks = {}
    start = time.perf_counter()
    data = text.encode("utf-8", "surrogatepass")
    tree = LexborHTMLParser(data, scripting=True)
    marks["parse"] = time.perf_counter()
    scan = extract._scan(tree)
    marks["scan"] = time.perf_counter()
    links = extract._links(scan, PAGE_URL, len(scan.links))
    marks["links"] = time.perf_counter()
    extract._meta_robots(scan.metas, "Googlebot")
    extract._canonical(tree.head, PAGE_URL)
    extract._refresh_url(scan.metas, PAGE_URL)
    extract._title(tree)
    marks["metas"] = time.perf_counter()
    extract._visible_text(tree, scan.invisible)
    marks["visible text"] = time.perf_counter()
    sum(1 for link in links if extract._host(link.url) != "fakehost")
    marks["outbound"] = time.perf_counter()
    spent = {}
    for name, mark in marks.items():
        spent[name] = (mark - start) * 1000
        start = mark
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=Path, default=CORPUS, help="directory of .html pages")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per page (fastest kept)")
    parser.add_argument("--stages", action="store_true", help="also show where parse_page spends its time")
    args = parser.parse_args()
    pages = [
        path.read_text(encoding="utf-8-sig", errors="replace") for path in sorted(args.pages.glob("*.html"))
    ]
    timings = [
        fastest(
            (lambda text=text: extract.parse_page(text, PAGE_URL), lambda text=text: limit(text, PAGE_URL)),
            args.rounds,
        )
        for text in pages
    ]
    ours = [mine for mine, _ in timings]
    floor = [least for _, least in timings]
    sizes = [len(text.encode("utf-8", "surrogatepass")) for text in pages]
    print(f"{len(pages)} pages from {args.pages}, fastest of {args.rounds} rounds per page\n")
    print(f"{'pages':<22}{'n':>4}{'median KB':>11}{'parse_page ms':>15}{'limit ms':>10}{'ratio':>7}")
    for name, low, high in BANDS:
        chosen = [i for i, size in enumerate(sizes) if low <= size < high]
        if not chosen:
            continue
        ms = statistics.median(ours[i] for i in chosen)
        floor_ms = statistics.median(floor[i] for i in chosen)
        kb = statistics.median(sizes[i] for i in chosen) / 1000
        print(f"{name:<22}{len(chosen):>4}{kb:>11.0f}{ms:>15.2f}{floor_ms:>10.2f}{ms / floor_ms:>7.2f}")
    print(f"\ntotal over all pages: parse_page {sum(ours):.0f} ms, limit {sum(floor):.0f} ms")
    if args.stages:
        totals: dict[str, float] = {}
        for text in pages:
            for name, spent in stages(text).items():
                totals[name] = totals.get(name, 0.0) + spent
        print("\nstage totals over all pages (one run each):")
        for name, spent in totals.items():
            print(f"  {name:<14}{spent:>8.1f} ms")


if __name__ == "__main__":
    main()
