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

if _typing.TYPE_CHECKING:  # the names below, for type checkers; at run time each loads on first use
    from crawler.app.inputs import read_claims as read_claims
    from crawler.app.run import verify_into as verify_into
    from crawler.config import Settings as Settings
    from crawler.config import __version__ as __version__
    from crawler.engine.pipeline import verify as verify
    from crawler.errors import ClaimError as ClaimError
    from crawler.errors import ConfigError as ConfigError
    from crawler.errors import CrawlerError as CrawlerError
    from crawler.errors import InputError as InputError
    from crawler.errors import StoreError as StoreError
    from crawler.models import Claim as Claim
    from crawler.models import Evidence as Evidence
    from crawler.models import ExpectedRel as ExpectedRel
    from crawler.models import Flag as Flag
    from crawler.models import InvalidClaim as InvalidClaim
    from crawler.models import Link as Link
    from crawler.models import MatchMode as MatchMode
    from crawler.models import Reason as Reason
    from crawler.models import Redirect as Redirect
    from crawler.models import Region as Region
    from crawler.models import Result as Result
    from crawler.models import Status as Status
    from crawler.store.base import Report as Report
    from crawler.store.base import RunInfo as RunInfo
    from crawler.store.sqlite import Store as Store

# The module of each public name. They are imported on first use: `import crawler` stays cheap,
# and the command installs its signal handlers before the engine (aiohttp...) is imported.
# tests/test_public_api.py checks that this table, `__all__` and the imports above agree.
_HOMES = {
    "crawler.app.run": ("verify_into",),
    "crawler.app.inputs": ("read_claims",),
    "crawler.config": ("Settings", "__version__"),
    "crawler.engine.pipeline": ("verify",),
    "crawler.errors": ("ClaimError", "ConfigError", "CrawlerError", "InputError", "StoreError"),
    "crawler.models": (
        "Claim",
        "Evidence",
        "ExpectedRel",
        "Flag",
        "InvalidClaim",
        "Link",
        "MatchMode",
        "Reason",
        "Redirect",
        "Region",
        "Result",
        "Status",
    ),
    "crawler.store.base": ("Report", "RunInfo"),
    "crawler.store.sqlite": ("Store",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> object:
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module 'crawler' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
