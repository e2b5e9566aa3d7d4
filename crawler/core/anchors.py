"""Anchor classes: what kind of text a found link carries (section 10 of the contract).

Pure. A link's text is classified by the first rule that holds, on the text normalised as
`expected_anchor` is (`history.normalize_anchor`: NFKC, case folded, punctuation as spaces,
whitespace collapsed):

1. `empty`: nothing is left after normalising.
2. `image`: the text is an image's `alt` (`Link.image`).
3. `exact`: equals the normalised `expected_anchor`.
4. `naked_url`: the trimmed, case-folded raw text is an http(s) URL or a host name (a path may
   follow it: `example.com/shoes`), or contains the target's host (one leading `www.` dropped,
   in ASCII or in Unicode spelling).
5. `branded`: contains, as a sequence of whole words, the first label of the target's registrable
   domain or one of the brand terms, normalised the same way.
6. `partial`: contains every word of `expected_anchor`.
7. `generic`: is one of the shipped phrases (`generic_anchors.txt`), e.g. "click here".
8. `other`.

A claim without `expected_anchor` (or with one that normalises to nothing) is never `exact` or
`partial`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from functools import cache, lru_cache
from importlib import resources

from crawler.core import urls
from crawler.core.history import normalize_anchor

_CACHED = 4096
# An http(s) URL with a host and no white space; or a host name: dot-separated labels of letters,
# digits and hyphens (any script), the last one two letters or more or an IDNA label, maybe a
# final dot, maybe followed by a path, query or fragment.
_URL = re.compile(r"https?://[^\s/?#]+\S*")
_HOST_NAME = re.compile(r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)\.?(?:[/?#]\S*)?")


class AnchorClass(StrEnum):
    """The kind of text a link carries; members are in the order their rules are tried."""

    EMPTY = "empty"
    IMAGE = "image"
    EXACT = "exact"
    NAKED_URL = "naked_url"
    BRANDED = "branded"
    PARTIAL = "partial"
    GENERIC = "generic"
    OTHER = "other"


# Claims repeat their expected anchors (a campaign pays for a few phrases): normalise each once.
_normalized = lru_cache(maxsize=_CACHED)(normalize_anchor)


@cache
def generic_phrases() -> frozenset[str]:
    """The shipped generic phrases, normalised (read from `generic_anchors.txt` on first use)."""
    text = resources.files("crawler.core").joinpath("generic_anchors.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(normalize_anchor(line) for line in lines if line and not line.startswith("#"))


class Classifier:
    """Classifies link texts for one set of brand terms (normalised once, not per link)."""

    __slots__ = ("_brands",)

    def __init__(self, brand_terms: Iterable[str] = ()) -> None:
        self._brands = tuple(term for term in map(normalize_anchor, brand_terms) if term)

    def classify(
        self,
        text: str,
        *,
        image: bool,
        expected_anchor: str | None,
        target_url: str,
        words: str | None = None,
    ) -> AnchorClass:
        """The class of a link's `text`: the first rule of the module's list that holds.

        `words` is `normalize_anchor(text)` when the caller has it already.
        """
        if words is None:
            words = normalize_anchor(text)
        if not words:
            return AnchorClass.EMPTY
        if image:
            return AnchorClass.IMAGE
        expected = _normalized(expected_anchor) if expected_anchor else ""
        if expected and words == expected:
            return AnchorClass.EXACT
        hosts, brand = _target_names(target_url)
        if _is_naked_url(text.strip().casefold(), hosts):
            return AnchorClass.NAKED_URL
        padded = f" {words} "
        if any(f" {name} " in padded for name in (brand, *self._brands) if name):
            return AnchorClass.BRANDED
        if expected and set(expected.split()) <= set(words.split()):
            return AnchorClass.PARTIAL
        if words in generic_phrases():
            return AnchorClass.GENERIC
        return AnchorClass.OTHER


def classify(
    text: str,
    *,
    image: bool,
    expected_anchor: str | None,
    target_url: str,
    brand_terms: Iterable[str] = (),
) -> AnchorClass:
    """The class of one link's `text` (build a `Classifier` once to classify many)."""
    return Classifier(brand_terms).classify(
        text, image=image, expected_anchor=expected_anchor, target_url=target_url
    )


def _is_naked_url(raw: str, hosts: tuple[str, ...]) -> bool:
    """True when `raw` (trimmed, case folded) is a URL or host name, or names one of `hosts`."""
    if _URL.fullmatch(raw) or _HOST_NAME.fullmatch(raw):
        return True
    return any(host in raw for host in hosts)


@lru_cache(maxsize=_CACHED)
def _target_names(target_url: str) -> tuple[tuple[str, ...], str]:
    """The spellings of the target's host a text may contain, and its brand: the first label of
    its registrable domain, normalised (IDNA labels in Unicode: `xn--bcher-kva` is `bücher`)."""
    host = urls.host_key(target_url).rstrip(".")
    if not host:
        return (), ""
    short = host.removeprefix("www.") or host
    hosts = tuple(dict.fromkeys(name for name in (short, _unicode(short)) if "." in name))
    label = urls.registrable_domain(host).split(".", 1)[0]
    return hosts, normalize_anchor(_unicode(label))


def _unicode(host: str) -> str:
    """`host` with its IDNA labels decoded, or as it is when one does not decode."""
    if "xn--" not in host:
        return host
    try:
        return host.encode("ascii").decode("idna")
    except UnicodeError:
        return host
