"""The HTML report (section 10): self-contained, charts beside tables, escaped, small at any scale."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest

from crawler.app.report_html import CSP, Markup, element, render
from crawler.core.figures import Accumulator, ClaimRow, Figures, RunMeta, RunPoint
from crawler.core.history import Event, EventType, LossReason, State
from crawler.models import Flag, Status

EVIL = "<script>alert(1)</script>"
SECTIONS = ["run", "figures", "statuses", "by-tag", "domains", "anchors", "over-time", "changes", "problems"]
SETTINGS = {"user_agent": "backlink-crawler/0.1", "delay": 1.0, "obey_robots": True, "brand_terms": ["acme"]}


def claim(i: int, status: Status, **fields: Any) -> ClaimRow:
    present = status in (Status.VERIFIED, Status.NOFOLLOW, Status.NOT_INDEXABLE)
    defaults: dict[str, Any] = {
        "state": State.LIVE if present else State.NOT_FOUND,
        "link_text": f"anchor {i}" if present else None,
        "indexable": True if present else None,
        "tags": {"vendor": f"v{i % 3}", "price": str(i % 7)},
    }
    built = ClaimRow(f"c{i}", f"https://s{i}.example.org/p", "https://www.acme.com/", status, **defaults)
    return replace(built, **fields)


def event(claim_id: str, kind: EventType, source_url: str = "https://a.org/", **fields: Any) -> Event:
    values: dict[str, Any] = {"reason": None, "old": None, "new": None, "last_seen_run": None} | fields
    return Event(
        "r2",
        claim_id,
        source_url,
        "https://www.acme.com/",
        {},
        kind,
        State.LIVE,
        State.LIVE,
        checked_at="2024-02-01T00:30:00Z",
        **values,
    )


def small_run(run_id: str = "r2") -> Figures:
    accumulator = Accumulator(RunMeta(run_id, "2024-02-01T00:00:00Z", None, "finished", SETTINGS))
    accumulator.add_run(RunPoint("r1", "2024-01-01T00:00:00Z", live=3, referring_domains=2, found=3))
    statuses = [Status.VERIFIED, Status.NOFOLLOW, Status.MISSING, Status.PAGE_ERROR, Status.INVALID]
    for i in range(20):
        accumulator.add(claim(i, statuses[i % 5], flags=(Flag.NOFOLLOW,) if i % 5 == 1 else ()))
    accumulator.add(
        claim(
            99,
            Status.MISSING,
            tags={"vendor": EVIL, "<b>col</b>": "x"},
            source_url='https://evil.example/"><img src=x onerror=alert(1)>',
        )
    )
    accumulator.add(claim(98, Status.VERIFIED, link_text="<img src=x onerror=alert(2)>"))
    accumulator.add_event(event("c2", EventType.LOST, reason=LossReason.LINK_REMOVED))
    accumulator.add_event(event("c0", EventType.FOUND))
    return accumulator.result()


class Page(HTMLParser):
    """What the report's markup holds: elements with their attributes, and each figure's tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.figures: list[set[str]] = []
        self.captions: list[str] = []
        self._depth = 0
        self._caption = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "figure":
            self.figures.append(set())
            self._depth += 1
        elif self._depth:
            self.figures[-1].add(tag)
        self._caption = tag == "figcaption"

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._depth -= 1
        self._caption = False

    def handle_data(self, data: str) -> None:
        if self._caption:
            self.captions.append(data)


@pytest.fixture(scope="module")
def html() -> str:
    return render(small_run(), db="my db.sqlite")


class TestSelfContained:
    def test_csp_meta(self, html: str) -> None:
        """The page carries the contract's Content-Security-Policy meta element."""
        assert (
            f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#x27;")}">' in html
        )
        assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

    def test_no_script_and_nothing_external(self, html: str) -> None:
        """No script, no element that loads anything, and every link points inside the page."""
        page = Page(html)
        assert "<script" not in html.lower()
        tags = {tag for tag, _ in page.elements}
        assert not tags & {
            "script",
            "img",
            "iframe",
            "link",
            "object",
            "embed",
            "image",
            "use",
            "audio",
            "video",
        }
        for tag, attrs in page.elements:
            assert "src" not in attrs, tag
            assert not any(name.startswith("on") for name in attrs), tag
            href = attrs.get("href") or attrs.get("xlink:href")
            assert href is None or href.startswith("#"), href
        assert "url(" not in html
        assert "@import" not in html

    def test_dark_light_and_print(self, html: str) -> None:
        """Colours follow the reader's scheme, and a print style is given."""
        assert "prefers-color-scheme:dark" in html
        assert "@media print" in html


class TestCharts:
    def test_each_chart_has_a_table_in_its_figure(self, html: str) -> None:
        """Every figure holding an SVG chart holds a table of the same numbers; there are four or more."""
        charts = [tags for tags in Page(html).figures if "svg" in tags]
        assert len(charts) >= 4
        assert all("table" in tags for tags in charts)

    def test_the_four_required_charts(self, html: str) -> None:
        """Statuses, anchor classes, a tag column and the runs over time each have a chart."""
        captions = " | ".join(Page(html).captions)
        for wanted in ("by status", "Anchor classes", "By vendor", "Per run"):
            assert wanted in captions

    def test_svg_is_well_formed(self, html: str) -> None:
        """Each inline SVG parses as XML (a stray character would break the chart)."""
        svgs = re.findall(r"<svg.*?</svg>", html, re.S)
        assert svgs
        for svg in svgs:
            ET.fromstring(svg)

    def test_chart_numbers_match_table(self, html: str) -> None:
        """The status chart's bar values are the numbers of its table."""
        figure = re.search(r"<figure><figcaption>Claims by status</figcaption>(.*?)</figure>", html, re.S)
        assert figure is not None
        svg, table = figure.group(1).split("<table>", 1)
        bars = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="start">([\d,]+)</text>', svg)
        cells = re.findall(r'<tr><td>\w+</td><td class="n">([\d,]+)</td>', table)
        assert bars == cells == ["4", "0", "0", "4", "5", "0", "4", "5"]


class TestContent:
    def test_sections_in_order(self, html: str) -> None:
        """The report has the contract's sections, in its order."""
        ids = [attrs["id"] for tag, attrs in Page(html).elements if tag == "section"]
        assert ids == SECTIONS

    def test_run_and_key_settings(self, html: str) -> None:
        """The run section names the run, its time, its claims and its key settings."""
        run = html.split('id="run"', 1)[1].split("</section>", 1)[0]
        for text in ("r2", "2024-02-01T00:00:00Z", "22", "backlink-crawler/0.1", "acme"):
            assert text in run

    def test_export_command_per_problem_status(self, html: str) -> None:
        """Each problem status names the export command that lists all of its claims, shell-quoted."""
        for status in ("invalid", "page_error", "missing", "nofollow"):
            assert f"crawler export --db &#x27;my db.sqlite&#x27; --run r2 --status {status}" in html

    def test_password_in_database_url_masked(self) -> None:
        """A PostgreSQL password never reaches the report's commands."""
        page = render(small_run(), db="postgresql://app:s3cret@db.internal/crawl")
        assert "s3cret" not in page
        assert "postgresql://app:***@db.internal/crawl" in page

    def test_problem_list_capped_with_rest(self) -> None:
        """Problems beyond the cap are counted, not listed, with the export command for the rest."""
        accumulator = Accumulator(RunMeta("r9", "2024-03-01T00:00:00Z"), max_problems=10)
        for i in range(25):
            accumulator.add(claim(i, Status.MISSING))
        page = render(accumulator.result())
        assert page.count("<td>c") == 10
        assert "15 of them are not listed here" in page
        assert "10 listed, 15 more" in page
        assert "crawler export --db crawler.sqlite --run r9 --status missing" in page

    def test_empty_run(self) -> None:
        """A run without claims renders, with its sections and the security policy."""
        page = render(Accumulator(RunMeta("r0", "2024-01-01T00:00:00Z")).result())
        assert CSP.replace("'", "&#x27;") in page
        assert [attrs["id"] for tag, attrs in Page(page).elements if tag == "section"] == SECTIONS


class TestEscaping:
    def test_tag_value_escaped(self, html: str) -> None:
        """A vendor tag holding a script element comes out as text."""
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert EVIL not in html

    def test_every_user_text_escaped(self, html: str) -> None:
        """Tag names, anchor texts and URLs come out as text, never as markup."""
        assert "&lt;b&gt;col&lt;/b&gt;" in html
        assert "<b>" not in html
        assert "&lt;img src=x onerror=alert 2 &gt;" in html  # anchors are shown normalised
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html

    def test_run_id_escaped(self) -> None:
        """Even the run id is escaped, in the title, headings and commands."""
        page = render(small_run(run_id="</title><script>x</script>"))
        assert "<script" not in page

    def test_element_escapes_text_and_attributes_not_markup(self) -> None:
        """`element` escapes text and attribute values once, and places `Markup` as it is."""
        built = element("p", "a<b", Markup("<i>ok</i>"), title='"x"')
        assert built == '<p title="&quot;x&quot;">a&lt;b<i>ok</i></p>'


class TestSize:
    @staticmethod
    def rows(n: int) -> Iterator[ClaimRow]:
        """Claims of a large run at their worst for the report: long URLs, reasons, tag names and
        values, many numeric tag columns, many flags, distinct anchors."""
        long = "x" * 2000
        statuses = [Status.VERIFIED, Status.NOFOLLOW, Status.MISSING, Status.INVALID, Status.PAGE_ERROR]
        flags = tuple(Flag)[:12]
        for i in range(n):
            status = statuses[i % 5]
            present = status in (Status.VERIFIED, Status.NOFOLLOW)
            tags = {f"column{k:02d}-{long[:200]}": f"{i % 50}-{long[:500]}" for k in range(30)}
            tags.update({f"amount{k:02d}-{long[:200]}": str(i % 1000) for k in range(10)})
            yield ClaimRow(
                f"claim-{i}-{long[:100]}",
                f"https://site{i % 20000}.example.org/{long}",
                f"https://www.acme.com/{long}",
                status,
                State.LIVE if present else State.LOST,
                reason=None if present else f"row {i}: target_url: not a valid URL: {long}",
                flags=flags,
                link_text=f"anchor text number {i} {long[:300]}" if present else None,
                indexable=present or None,
                tags=tags,
            )

    def report(self, n: int) -> str:
        accumulator = Accumulator(RunMeta("r-big", "2024-05-01T00:00:00Z", None, "finished", SETTINGS))
        for r in range(400):
            accumulator.add_run(RunPoint(f"run-{r:04d}", "2024-01-01T00:00:00Z", n, n // 10, 5, 5, 5))
        for row in self.rows(n):
            accumulator.add(row)
        long = "y" * 2000
        for i in range(min(n, 5000)):
            accumulator.add_event(
                event(
                    f"claim-{i}-{long[:100]}",
                    EventType.ANCHOR_CHANGED,
                    f"https://a.org/{long}",
                    old=f"old {long}",
                    new=f"new {long}",
                )
            )
        return render(accumulator.result())

    def test_worst_case_under_two_megabytes(self) -> None:
        """With every list at its cap and every text long, the report stays under 2 MB."""
        assert len(self.report(3_000).encode()) < 2_000_000

    def test_size_bounded_by_caps_not_claims(self) -> None:
        """100,000 claims make a report barely larger than 10,000 do (only numbers get longer), so a
        1,000,000-claim run's report is as far under 2 MB as the worst case above."""
        sizes = []
        for n in (10_000, 100_000):
            accumulator = Accumulator(RunMeta("r-big", "2024-05-01T00:00:00Z"))
            for i in range(n):
                accumulator.add(claim(i, (Status.VERIFIED, Status.MISSING, Status.NOFOLLOW)[i % 3]))
            sizes.append(len(render(accumulator.result()).encode()))
        assert sizes[1] < sizes[0] * 1.01
