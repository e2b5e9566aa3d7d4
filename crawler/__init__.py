"""backlink-crawler: verify claimed backlinks.

A claim says "the page `source_url` links to `target_url`". The crawler fetches each source
page politely (robots.txt, per-host limits), finds the matching link with its rel and text,
and decides a verdict (`Status`) with facts beside it (`Flag`).

    import crawler

    claims = [crawler.Claim(source_url="https://blog.example/post", target_url="https://oursite.example/")]
    async for result in crawler.verify(claims):
        print(result.status, result.flags, result.link)

`verify` needs no storage. To keep results (and resume interrupted runs), use a `Store`:

    async with crawler.Store("links.sqlite") as store:
        info = await crawler.verify_into(store, crawler.read_claims("claims.csv"))
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from crawler.app.batch import verify_into
    from crawler.config import Settings, __version__
    from crawler.core.claims import InputError, read_claims
    from crawler.engine.pipeline import verify
    from crawler.models import (
        Claim,
        ClaimError,
        ExpectedRel,
        Flag,
        InvalidClaim,
        Link,
        MatchMode,
        Redirect,
        Region,
        Result,
        Status,
    )
    from crawler.store.sqlite import Report, RunInfo, Store, StoreError

__all__ = [
    "Claim",
    "ClaimError",
    "ExpectedRel",
    "Flag",
    "InputError",
    "InvalidClaim",
    "Link",
    "MatchMode",
    "Redirect",
    "Region",
    "Report",
    "Result",
    "RunInfo",
    "Settings",
    "Status",
    "Store",
    "StoreError",
    "__version__",
    "read_claims",
    "verify",
    "verify_into",
]

# The module of each public name. They are imported on first use: `import crawler` stays cheap,
# and the command installs its signal handlers before the engine (aiohttp...) is imported.
_HOMES = {
    "verify_into": "crawler.app.batch",
    "InputError": "crawler.core.claims",
    "read_claims": "crawler.core.claims",
    "Settings": "crawler.config",
    "__version__": "crawler.config",
    "verify": "crawler.engine.pipeline",
    **dict.fromkeys(
        [
            "Claim",
            "ClaimError",
            "ExpectedRel",
            "Flag",
            "InvalidClaim",
            "Link",
            "MatchMode",
            "Redirect",
            "Region",
            "Result",
            "Status",
        ],
        "crawler.models",
    ),
    **dict.fromkeys(["Report", "RunInfo", "Store", "StoreError"], "crawler.store.sqlite"),
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'crawler' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
