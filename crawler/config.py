"""Settings: one frozen value, built from defaults < config file < environment < flags.

The only module that reads `os.environ`. `Settings` checks itself however it is built (a file,
a variable, a flag or the library), so a value that would make the crawler spin, hang or blame
healthy sites is refused with a `ConfigError` naming the setting, before any request.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from crawler.errors import ConfigError

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/backlink-crawler/backlink-crawler"
DEFAULT_USER_AGENT = f"backlink-crawler/{__version__} (+{PROJECT_URL})"
MAX_DEFAULT_WORKERS = 8
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
REDACTED = "[redacted]"


class NotifyFormat(StrEnum):
    """The document POSTed to the `notify` webhook."""

    JSON = "json"
    SLACK = "slack"


class RenderMode(StrEnum):
    """When a page is rendered in a browser (section 12)."""

    OFF = "off"
    AUTO = "auto"
    ALWAYS = "always"


def default_workers(
    cores: int | None = None, *, root: Path = CGROUP_ROOT, membership: Path = PROC_SELF_CGROUP
) -> int:
    """The `workers` default: the CPU cores available to this process, at most 8.

    `cores` (default: the process's CPU affinity) lowered by the cgroup v2 `cpu.max` quotas
    of the process's cgroup and its ancestors under `root`, as `membership` names it.
    """
    available = _affinity() if cores is None else cores
    quota = cpu_quota(root=root, membership=membership)
    return max(1, min(available, quota or available, MAX_DEFAULT_WORKERS))


def cpu_quota(*, root: Path = CGROUP_ROOT, membership: Path = PROC_SELF_CGROUP) -> int | None:
    """CPUs the cgroup v2 `cpu.max` quotas let this process use, or None when unlimited.

    Rounded up, as the JVM and .NET do: a quota of 1.5 CPUs keeps two processes busy.
    """
    quotas = [_cpu_max(directory / "cpu.max") for directory in _cgroup_dirs(root, membership)]
    return min((quota for quota in quotas if quota is not None), default=None)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _cgroup_dirs(root: Path, membership: Path) -> list[Path]:
    """The process's cgroup v2 directory and its ancestors up to `root` (in a container, `root`)."""
    try:
        lines = membership.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    parts = Path(next((line[3:] for line in lines if line.startswith("0::")), "/")).parts[1:]
    if ".." in parts:  # outside our cgroup namespace's root: only `root` is ours to read
        parts = ()
    own = root.joinpath(*parts)
    return [own, *list(own.parents)[: len(parts)]]


def _cpu_max(path: Path) -> int | None:
    """CPUs of a `cpu.max` file ("max 100000" or "200000 100000"), rounded up; None if unlimited."""
    try:
        quota, period = path.read_text(encoding="ascii").split()
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError, ZeroDivisionError):  # absent, unreadable, "max" or malformed
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    """How the crawler works. Every field has a safe default; see config/crawler.toml.

    Built from any values (an int for a float, a list for a tuple, a word for an enum, a str
    for a path), it holds them as the annotated types, or raises `ConfigError` naming the field.
    """

    user_agent: str = DEFAULT_USER_AGENT
    index_agent: str = "Googlebot"
    concurrency: int = 64
    per_host: int = 1
    max_idle_connections: int = 256
    delay: float = 1.0
    max_crawl_delay: float = 30.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    max_retry_after: float = 120.0
    max_redirects: int = 10
    max_bytes: int = 5 * 1024 * 1024
    max_robots_bytes: int = 500 * 1024
    max_header_bytes: int = 65536
    max_pending_pages: int = 1024
    obey_robots: bool = True
    allow_private: bool = False
    verify_tls: bool = True
    proxy: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    resolve: Mapping[str, str] = field(default_factory=dict)
    confirm_runs: int = 2
    unreachable_runs: int = 3
    notify: str | None = None
    notify_format: NotifyFormat = NotifyFormat.JSON
    brand_terms: tuple[str, ...] = ()
    archive: Path | None = None
    archive_max_bytes: int = 1024 * 1024 * 1024
    render: RenderMode = RenderMode.OFF
    browser: Path | None = None
    render_timeout: float = 20.0
    render_concurrency: int = 2
    workers: int = field(default_factory=default_workers)
    lease: float = 60.0

    def __post_init__(self) -> None:
        for name, kind in _KINDS.items():
            object.__setattr__(self, name, _valid(name, kind, getattr(self, name)))

    @property
    def product_token(self) -> str:
        """The part of `user_agent` before the first `/` or space: what robots.txt groups match."""
        return _product_token(self.user_agent)

    def record(self) -> dict[str, object]:
        """The settings stored with a run, as JSON values and without secrets: header names
        only, proxy credentials replaced, the `notify` URL cut to its scheme and host."""
        record = {name: _json_value(getattr(self, name)) for name in _KINDS}
        record["headers"] = sorted(self.headers)
        record["proxy"] = self.proxy and _without_userinfo(self.proxy)
        record["notify"] = self.notify and _origin_only(self.notify)
        return record


# Checks ---------------------------------------------------------------------------------


class Kind(StrEnum):
    """The value types a setting can have, each with one text form and one TOML form."""

    STR = "str"
    OPTIONAL_STR = "str | None"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    MAPPING = "Mapping[str, str]"
    LIST = "tuple[str, ...]"
    PATH = "Path | None"
    CHOICE = "choice"  # a StrEnum field: one of its words


_CHOICES: dict[str, type[StrEnum]] = {"NotifyFormat": NotifyFormat, "RenderMode": RenderMode}
_ENUMS = {f.name: _CHOICES[str(f.type)] for f in fields(Settings) if str(f.type) in _CHOICES}
_KINDS = {f.name: Kind.CHOICE if f.name in _ENUMS else Kind(str(f.type)) for f in fields(Settings)}

# Lower bounds. aiohttp applies max_header_bytes to the status line and to each header field:
# RFC 6265 has clients take cookies of 4096 bytes, and aiohttp's own default is 8190.
_AT_LEAST: dict[str, float] = {
    "max_header_bytes": 8192,
    "archive_max_bytes": 1024 * 1024,
    "lease": 3.0,  # holders renew every third of it: a second between renewals at least
}
_ABOVE_ZERO = frozenset(
    {
        *("concurrency", "per_host", "max_redirects", "max_bytes", "max_robots_bytes", "max_pending_pages"),
        *("timeout", "connect_timeout", "confirm_runs", "unreachable_runs", "render_timeout"),
        *("render_concurrency", "workers"),
    }
)
_NOT_NEGATIVE = frozenset(
    {"max_idle_connections", "delay", "max_crawl_delay", "retries", "backoff", "max_retry_after"}
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # C0 controls but tab, and DEL (RFC 9110 5.5)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 5.6.2)
_NOT_IN_HOST = re.compile(r"[\s/\\?#@:\[\]]")


def _valid(name: str, kind: Kind, value: object) -> object:
    """`value` as the field's type, in range and well formed, or a `ConfigError` naming `name`."""
    value = _typed(name, kind, value)
    if _is_number(value):
        _in_range(name, value)  # type: ignore[arg-type]  # _is_number said so
    check = _CONTENT.get(name)
    return value if check is None or value is None else check(name, value)


def _typed(name: str, kind: Kind, value: object) -> object:
    if kind is Kind.CHOICE:
        return _choice(name, _ENUMS[name], value)
    if kind in (Kind.OPTIONAL_STR, Kind.PATH) and value in (None, ""):
        return None
    if kind is Kind.PATH and isinstance(value, str | os.PathLike):
        return Path(value)
    if kind is Kind.FLOAT and _is_number(value):
        if not math.isfinite(value):  # type: ignore[arg-type]  # _is_number said so
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return float(value)  # type: ignore[arg-type]
    if kind is Kind.MAPPING and isinstance(value, Mapping) and all(map(_is_text, value.values())):
        return {str(key): item for key, item in value.items()}
    if kind is Kind.LIST and isinstance(value, list | tuple) and all(map(_is_text, value)):
        return tuple(value)
    wanted = {Kind.STR: str, Kind.OPTIONAL_STR: str, Kind.INT: int, Kind.BOOL: bool}.get(kind)
    if (
        wanted is not None
        and isinstance(value, wanted)
        and (kind is not Kind.INT or not isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"{name}: expected {_DESCRIBE[kind]}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _choice(name: str, enum: type[StrEnum], value: object) -> StrEnum:
    if isinstance(value, str):
        for member in enum:
            if member.value == value.strip().lower():
                return member
    words = ", ".join(member.value for member in enum)
    raise ConfigError(f"{name}: expected one of {words}, got {value!r}")


def _in_range(name: str, value: float) -> None:
    if name in _ABOVE_ZERO and value <= 0:
        raise ConfigError(f"{name} must be greater than 0, not {value!r}")
    if name in _NOT_NEGATIVE and value < 0:
        raise ConfigError(f"{name} must not be negative, not {value!r}")
    least = _AT_LEAST.get(name)
    if least is not None and value < least:
        shown = int(least) if least == int(least) else least
        raise ConfigError(f"{name} must be at least {shown}, not {value!r}")


def _user_agent(name: str, value: str) -> str:
    _no_control(name, value)
    if not _product_token(value):
        raise ConfigError(f"{name} must start with a product token")
    return value


def _index_agent(name: str, value: str) -> str:
    _no_control(name, value)
    if not value.strip():
        raise ConfigError(f"{name} must not be empty")
    return value


def _no_control(name: str, value: str, what: str = "the value") -> None:
    """Refuse CR, LF and other control characters, without echoing a value that may be secret."""
    found = _CONTROL.search(value)
    if found:
        where = f"U+{ord(found.group()):04X} at offset {found.start()}"
        raise ConfigError(f"{name}: {what} contains a control character ({where})")


def _http_url(name: str, url: str) -> str:
    """`url` if it is an http(s) URL with a host; a message shows no credentials, no webhook."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError:  # its message may quote a password cut short by a `/`: not shown
        problem = "its host or port can't be read"
    else:
        problem = _url_problem(name, url, parts)
    if problem:
        shown = f", got {_without_userinfo(url)!r}" if name == "proxy" else ""
        raise ConfigError(f"{name}: expected an http:// or https:// URL with a host{shown}: {problem}")
    return url


def _url_problem(name: str, url: str, parts: SplitResult) -> str:
    scheme = parts.scheme.lower()
    if _CONTROL.search(url) or " " in url:
        return "it contains a space or a control character"
    if scheme not in ("http", "https"):
        return f"the scheme is {scheme!r}" if scheme else "there is no scheme"
    if not parts.hostname:
        return "there is no host"
    if name == "proxy" and (parts.path not in ("", "/") or parts.query or parts.fragment):
        return "a proxy URL has no path, query or fragment"
    return ""


def _headers(name: str, headers: dict[str, str]) -> dict[str, str]:
    for key, value in headers.items():
        if not _TOKEN.fullmatch(key):
            raise ConfigError(f"{name}: {key!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
        _no_control(name, value, f"the value of {key}")
    return headers


def _resolve(name: str, mapping: dict[str, str]) -> dict[str, str]:
    resolved = {}
    for host, address in mapping.items():
        if not host.strip() or _NOT_IN_HOST.search(host.strip()):
            raise ConfigError(f"{name}: {host!r} is not a host name")
        try:
            ip = ipaddress.ip_address(address.strip().removeprefix("[").removesuffix("]"))
        except ValueError:
            raise ConfigError(f"{name}: {host} maps to {address!r}, not an IP address") from None
        resolved[host.strip().lower()] = str(ip)
    return resolved


def _terms(name: str, terms: tuple[str, ...]) -> tuple[str, ...]:
    for term in terms:
        _no_control(name, term, "a term")
        if not term.strip():
            raise ConfigError(f"{name}: a term is empty")
    return tuple(term.strip() for term in terms)


def _path(name: str, path: Path) -> Path:
    if "\0" in str(path):
        raise ConfigError(f"{name}: the path contains a NUL character")
    return path


_CONTENT: dict[str, Callable[[str, Any], object]] = {
    "user_agent": _user_agent,
    "index_agent": _index_agent,
    "proxy": _http_url,
    "notify": _http_url,
    "headers": _headers,
    "resolve": _resolve,
    "brand_terms": _terms,
    "archive": _path,
    "browser": _path,
}


def _product_token(user_agent: str) -> str:
    return user_agent.strip().split("/", 1)[0].split(" ", 1)[0]


# Redaction ------------------------------------------------------------------------------


def _without_userinfo(url: str) -> str:
    """`url` with everything before the last `@` of its authority replaced by "[redacted]"."""
    scheme, found, rest = url.partition("://")
    prefix = f"{scheme}://" if found else ""
    rest = rest if found else url
    at = re.split(r"[?#]", rest, maxsplit=1)[0].rfind("@")  # a `/` in a password must not end it
    return url if at < 0 else f"{prefix}{REDACTED}@{rest[at + 1 :]}"


def _origin_only(url: str) -> str:
    """`scheme://host[:port]/[redacted]` of a valid URL: a webhook's path and query are its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/{REDACTED}"


def _json_value(value: object) -> object:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


# Text and TOML forms --------------------------------------------------------------------

ENV_PREFIX = "CRAWLER_"
ENV_CONFIG = "CRAWLER_CONFIG"
# Variables of the command line itself, not settings: they are not "unknown settings".
ENV_OPTIONS = frozenset({ENV_CONFIG, "CRAWLER_DB", "CRAWLER_LOG_FORMAT"})
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})

# One line per setting: the flag's help, the comment in config/crawler.toml, the README table.
HELP: dict[str, str] = {
    "user_agent": "User-Agent header; robots.txt groups match its product token (up to the first / or space)",
    "index_agent": "the search engine crawler whose robots rules decide whether a page is indexable",
    "concurrency": "requests in flight in total",
    "per_host": "requests in flight per host",
    "max_idle_connections": "idle keep-alive connections kept for reuse, least recently used closed first "
    "(each holds a file descriptor)",
    "delay": "seconds between the starts of two requests to the same host",
    "max_crawl_delay": "a robots.txt Crawl-delay for our product token is honoured up to this many seconds",
    "timeout": "seconds per request, reading the body included",
    "connect_timeout": "seconds to connect",
    "retries": "more attempts after a timeout, a connection error, a 429 or a 5xx",
    "backoff": "base of the exponential backoff between attempts, in seconds (with jitter)",
    "max_retry_after": "a server's Retry-After is honoured up to this many seconds",
    "max_redirects": "redirect hops followed per page, instant meta refreshes included",
    "max_bytes": "bytes of decoded body read per page; the rest is cut (flag truncated)",
    "max_robots_bytes": "bytes of a robots.txt file parsed",
    "max_header_bytes": "longest response status line or header field accepted, in bytes (at least 8192)",
    "max_pending_pages": "distinct pages waiting to be fetched at most (bounds memory)",
    "obey_robots": "respect robots.txt rules for our own product token",
    "allow_private": "allow loopback, private and other non-public addresses (off guards internal networks)",
    "verify_tls": "verify TLS certificates",
    "proxy": 'http:// or https:// proxy URL for every request, credentials allowed ("" for none)',
    "headers": "extra request headers, name to value",
    "resolve": "host names mapped to IP addresses (the URL's port is kept), like curl --resolve",
    "confirm_runs": "conclusive runs in a row without the link before a live claim is lost or blocked",
    "unreachable_runs": "inconclusive runs in a row that make an unreachable event",
    "notify": 'http:// or https:// webhook URL that verify POSTs the run\'s events to ("" for none)',
    "notify_format": "the webhook's document: json, or slack (an incoming-webhook message)",
    "brand_terms": "terms that make an anchor text branded, besides the target's domain name",
    "archive": 'directory of the WARC evidence files ("" for none)',
    "archive_max_bytes": "bytes of a WARC file at most, unless one record is larger (at least 1 MiB)",
    "render": "render pages in a browser: off, auto (pages that look built by scripts) or always",
    "browser": 'Chromium executable ("" for the first of chromium, chromium-browser, google-chrome '
    "on the PATH, then Playwright's)",
    "render_timeout": "seconds a page may take to render",
    "render_concurrency": "pages rendered at a time",
    "workers": "processes that share a run's work on this machine",
    "lease": "seconds a dead worker's hosts stay held before others take them over (at least 3)",
}
# Defaults that depend on the machine: documented in words, never written into a shipped file.
DEFAULT_TEXT: dict[str, str] = {"workers": "the CPU cores available to the process, at most 8"}


@dataclass(frozen=True, slots=True)
class _Items:
    """How a mapping setting is written as text: `form` items, `separator` inside each."""

    form: str
    separator: str
    split: re.Pattern[str]


# A comma starts a new header only before `Name:`: values such as `fr, en;q=0.5` keep theirs.
_ITEMS = {
    "headers": _Items("NAME: VALUE", ":", re.compile(rf",(?=\s*{_TOKEN.pattern}\s*:)")),
    "resolve": _Items("HOST=ADDRESS", "=", re.compile(",")),
}


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One field of `Settings` and its three spellings: file key, environment variable, flag."""

    name: str
    kind: Kind
    default: object
    choices: tuple[str, ...] = ()

    @property
    def help(self) -> str:
        return HELP[self.name]

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        """The default as help and documentation say it: in words where it depends on the machine."""
        default = self.default
        if self.name in DEFAULT_TEXT:
            return DEFAULT_TEXT[self.name]
        if not default and not isinstance(default, int | float):  # None, "", (), {}
            return "none"
        return str(default) if isinstance(default, str | Path) else _toml_value(default)

    @property
    def item_form(self) -> str | None:
        """A mapping's item as text (`NAME: VALUE`, `HOST=ADDRESS`); None for other kinds."""
        items = _ITEMS.get(self.name)
        return items.form if items else None

    def from_text(self, text: str) -> object:
        """The value written as text (environment, flags): lists and mappings comma-separated."""
        if self.kind is Kind.MAPPING:
            return _text_mapping(self.name, text)
        return _FROM_TEXT[self.kind](text)

    def from_toml(self, value: object) -> object:
        """The value read from TOML: a mapping may also be an array of `item_form` strings."""
        if self.kind is Kind.MAPPING and isinstance(value, list) and all(map(_is_text, value)):
            return dict(_item(self.name, item) for item in value)
        return value


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"expected true, false, 1 or 0, got {text!r}")


def _text_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _text_mapping(name: str, text: str) -> dict[str, str]:
    if text.lstrip().startswith("{"):  # the JSON object of earlier versions: no item starts with {
        return _json_mapping(text)
    return dict(_item(name, part) for part in _ITEMS[name].split.split(text) if part.strip())


def _item(name: str, text: str) -> tuple[str, str]:
    items = _ITEMS[name]
    key, found, value = text.partition(items.separator)
    if not found or not key.strip():
        raise ValueError(f"expected {items.form} items separated by commas, got {text!r}")
    return key.strip(), value.strip()


def _json_mapping(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f'expected a JSON object such as {{"name": "value"}}, got {text!r}') from None
    if not isinstance(value, dict) or not all(map(_is_text, value.values())):
        raise ValueError(f"expected names mapped to text values, got {value!r}")
    return value


_FROM_TEXT: dict[Kind, Callable[[str], object]] = {
    Kind.STR: str,
    Kind.OPTIONAL_STR: lambda text: text or None,
    Kind.INT: _int,
    Kind.FLOAT: _float,
    Kind.BOOL: _bool,
    Kind.LIST: _text_list,
    Kind.PATH: lambda text: text or None,
    Kind.CHOICE: str,  # Settings checks the word
}
_DESCRIBE = {
    Kind.STR: "text",
    Kind.OPTIONAL_STR: "text",
    Kind.INT: "a whole number",
    Kind.FLOAT: "a number",
    Kind.BOOL: "true or false",
    Kind.MAPPING: "names mapped to text values",
    Kind.LIST: "a list of text",
    Kind.PATH: "a path",
}

# Derived from the dataclass so the file keys, variables and flags can't drift from the fields.
# `Kind(field.type)` fails at import when a field of a new type appears: teach `Kind` first.
_DEFAULTS = Settings()
SPECS: tuple[SettingSpec, ...] = tuple(
    SettingSpec(
        name=name,
        kind=kind,
        default=getattr(_DEFAULTS, name),
        choices=tuple(member.value for member in _ENUMS[name]) if name in _ENUMS else (),
    )
    for name, kind in _KINDS.items()
)
_BY_NAME = {spec.name: spec for spec in SPECS}


def load_settings(
    file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Settings from defaults < TOML `file` < `CRAWLER_*` variables of `environ` < `flags`.

    `flags` maps field names to values: text is read as `SettingSpec.from_text` reads it (a
    mapping's repeated flag may be a list of texts, merged in order); other values are taken as
    typed. Raises `ConfigError` naming the setting and where it was written for an unknown name
    or a bad value; nothing is ignored.
    """
    values: dict[str, object] = {}
    if file is not None:
        values.update(_file_layer(file))
    values.update(_env_layer(os.environ if environ is None else environ))
    for name, value in (flags or {}).items():
        values[name] = _checked(f"option --{name.replace('_', '-')}", name, value, _from_flag)
    return Settings(**values)  # type: ignore[arg-type]


def env_option(variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    """An option of the command line given in the environment (one of `ENV_OPTIONS`), or None."""
    if variable not in ENV_OPTIONS:
        raise KeyError(variable)
    return (os.environ if environ is None else environ).get(variable) or None


def _file_layer(file: str | os.PathLike[str]) -> dict[str, object]:
    where = f"config file {os.fspath(file)}"
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it: {error.strerror or error}") from None
    try:
        table = tomllib.loads(data.decode("utf-8-sig"))  # a byte-order mark, as Notepad writes, is fine
    except UnicodeDecodeError as error:
        offset = error.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        raise ConfigError(f"{where}: not UTF-8 text (byte {data[offset]:#04x} at offset {offset})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    return {name: _checked(where, name, value, SettingSpec.from_toml) for name, value in table.items()}


def _env_layer(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for variable, text in environ.items():
        if variable.startswith(ENV_PREFIX) and variable not in ENV_OPTIONS:
            name = variable[len(ENV_PREFIX) :].lower()
            where = f"environment variable {variable}"
            values[name] = _checked(where, name, text, SettingSpec.from_text)
    return values


def _from_flag(spec: SettingSpec, value: object) -> object:
    if isinstance(value, str):
        return spec.from_text(value)
    if spec.kind is Kind.MAPPING and isinstance(value, list | tuple) and all(map(_is_text, value)):
        return {key: item for text in value for key, item in _text_mapping(spec.name, text).items()}
    return value


def _checked(where: str, name: str, raw: Any, convert: Callable[[SettingSpec, Any], object]) -> object:
    """`raw` converted for setting `name` and checked alone, or a `ConfigError` saying where."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ConfigError(f"{where}: unknown setting {name!r}{_did_you_mean(name)}")
    try:
        value = convert(spec, raw)
        _valid(name, spec.kind, value)  # every check of Settings is on one field
    except ValueError as error:
        message = str(error)  # Settings' own messages start with the name already
        raise ConfigError(
            f"{where}: {message if message.startswith(name) else f'{name}: {message}'}"
        ) from None
    return value


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name.replace("-", "_").lower(), _BY_NAME, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def render_toml(settings: Settings | None = None) -> str:
    """`settings` as a commented TOML file that `load_settings` reads back.

    Without `settings`, the defaults; a default that depends on the machine (`DEFAULT_TEXT`) is
    then a commented-out line, so the file means the same on every machine.
    """
    lines = [
        "# backlink-crawler settings: every key is optional; absent keys keep their default.",
        "# Precedence: defaults < this file < CRAWLER_<SETTING> variables < command-line flags.",
    ]
    for spec in SPECS:
        lines += ["", f"# {spec.help}"]
        if settings is None and spec.name in DEFAULT_TEXT:
            lines.append(f"# {spec.name} = 4  # unset: {spec.default_text}")
        else:
            lines.append(f"{spec.name} = {_toml_value(getattr(settings or _DEFAULTS, spec.name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{json.dumps(key)} = {json.dumps(item)}" for key, item in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(item) for item in value) + "]"
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON string escapes are valid TOML basic-string escapes
    return repr(value)
