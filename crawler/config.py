"""Settings: one frozen value, built from defaults < config file < environment < flags.

The only module that reads `os.environ`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from crawler.errors import ConfigError

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/backlink-crawler/backlink-crawler"
DEFAULT_USER_AGENT = f"backlink-crawler/{__version__} (+{PROJECT_URL})"


@dataclass(frozen=True, slots=True)
class Settings:
    """How the crawler fetches. Every field has a safe default; see config/crawler.toml."""

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

    def __post_init__(self) -> None:
        positive = (
            "concurrency",
            "per_host",
            "max_redirects",
            "max_bytes",
            "max_robots_bytes",
            "max_header_bytes",
            "max_pending_pages",
            "timeout",
            "connect_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0, not {getattr(self, name)!r}")
        non_negative = (
            "max_idle_connections",
            "delay",
            "max_crawl_delay",
            "retries",
            "backoff",
            "max_retry_after",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)!r}")
        if not self.product_token:
            raise ValueError("user_agent must start with a product token")
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "resolve", {k.lower(): v for k, v in self.resolve.items()})

    @property
    def product_token(self) -> str:
        """The part of `user_agent` before the first `/` or space: what robots.txt groups match."""
        return self.user_agent.strip().split("/", 1)[0].split(" ", 1)[0]


ENV_PREFIX = "CRAWLER_"
ENV_CONFIG = "CRAWLER_CONFIG"
# Variables of the command line itself, not settings: they are not "unknown settings".
ENV_OPTIONS = frozenset({ENV_CONFIG, "CRAWLER_DB", "CRAWLER_LOG_FORMAT"})
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class Kind(StrEnum):
    """The value types a setting can have, each with one text form and one TOML form."""

    STR = "str"
    OPTIONAL_STR = "str | None"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    MAPPING = "Mapping[str, str]"


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
    "max_header_bytes": "longest response header line accepted, in bytes",
    "max_pending_pages": "distinct pages waiting to be fetched at most (bounds memory)",
    "obey_robots": "respect robots.txt rules for our own product token",
    "allow_private": "allow loopback, private and other non-public addresses (off guards internal networks)",
    "verify_tls": "verify TLS certificates",
    "proxy": 'HTTP(S) proxy URL for every request ("" for none)',
    "headers": "extra request headers, name to value",
    "resolve": "host names mapped to IP addresses (the URL's port is kept), like curl --resolve",
}


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One field of `Settings` and its three spellings: file key, environment variable, flag."""

    name: str
    kind: Kind
    default: object

    @property
    def help(self) -> str:
        return HELP[self.name]

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def from_text(self, text: str) -> object:
        """The value written as text (environment, flags); mappings are a JSON object here."""
        return _FROM_TEXT[self.kind](text)

    def typed(self, value: object) -> object:
        """A value the command line already parsed, passed through unchanged."""
        return value

    def from_toml(self, value: object) -> object:
        """The value read from TOML, checked against the field's type."""
        if self.kind is Kind.MAPPING:
            return _mapping(value)
        if self.kind is Kind.FLOAT and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        expected = {Kind.STR: str, Kind.OPTIONAL_STR: str, Kind.INT: int, Kind.FLOAT: float, Kind.BOOL: bool}
        wanted = expected[self.kind]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise ValueError(f"expected {_DESCRIBE[self.kind]}, got {value!r}")
        if self.kind is Kind.OPTIONAL_STR and not value:
            return None
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


def _json_mapping(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f'expected a JSON object such as {{"name": "value"}}, got {text!r}') from None
    return _mapping(value)


def _mapping(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"expected names mapped to text values, got {value!r}")
    return {str(key): item for key, item in value.items()}


_FROM_TEXT: dict[Kind, Callable[[str], object]] = {
    Kind.STR: str,
    Kind.OPTIONAL_STR: lambda text: text or None,
    Kind.INT: _int,
    Kind.FLOAT: _float,
    Kind.BOOL: _bool,
    Kind.MAPPING: _json_mapping,
}
_DESCRIBE = {
    Kind.STR: "text",
    Kind.OPTIONAL_STR: "text",
    Kind.INT: "a whole number",
    Kind.FLOAT: "a number",
    Kind.BOOL: "true or false",
    Kind.MAPPING: "a table",
}

# Derived from the dataclass so the file keys, variables and flags can't drift from the fields.
# `Kind(field.type)` fails at import when a field of a new type appears: teach `Kind` first.
_DEFAULTS = Settings()
SPECS: tuple[SettingSpec, ...] = tuple(
    SettingSpec(
        name=f.name,
        kind=Kind(str(f.type)),
        default=getattr(_DEFAULTS, f.name),
    )
    for f in fields(Settings)
)
_BY_NAME = {spec.name: spec for spec in SPECS}


def load_settings(
    file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Settings from defaults < TOML `file` < `CRAWLER_*` variables of `environ` < `flags`.

    `flags` maps field names to values already typed (the command line parses its text with
    `SettingSpec.from_text`). Raises `ConfigError` naming the setting and where it was written
    for an unknown name or a bad value; nothing is ignored.
    """
    values: dict[str, object] = {}
    if file is not None:
        values.update(_file_layer(file))
    values.update(_env_layer(os.environ if environ is None else environ))
    for name, value in (flags or {}).items():
        values[name] = _checked(f"option {_BY_NAME[name].flag}", name, value, SettingSpec.typed)
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
            table = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it: {error.strerror or error}") from None
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


def _checked(where: str, name: str, raw: Any, convert: Callable[[SettingSpec, Any], object]) -> object:
    """`raw` converted for setting `name` and checked alone, or a `ConfigError` saying where."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ConfigError(f"{where}: unknown setting {name!r}{_did_you_mean(name)}")
    try:
        value = convert(spec, raw)
        Settings(**{name: value})  # type: ignore[arg-type]  # each check of Settings is on one field
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
    """`settings` (default: the defaults) as a commented TOML file that `load_settings` reads back."""
    settings = settings or Settings()
    lines = [
        "# backlink-crawler settings: every key is optional; absent keys keep their default.",
        "# Precedence: defaults < this file < CRAWLER_<SETTING> variables < command-line flags.",
    ]
    for spec in SPECS:
        lines += ["", f"# {spec.help}", f"{spec.name} = {_toml_value(getattr(settings, spec.name))}"]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{json.dumps(key)} = {json.dumps(item)}" for key, item in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    return repr(value)
