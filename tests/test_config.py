"""Settings loading: defaults < config file < environment < flags, and every bad input named."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from crawler import config
from crawler.config import (
    SPECS,
    Kind,
    NotifyFormat,
    RenderMode,
    Settings,
    default_workers,
    load_settings,
    render_toml,
)
from crawler.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# One setting of each kind: (name, file value as TOML, environment text, flag value, expected per layer).
MATRIX = [
    ("delay", "0.5", "0.25", 0.125, (1.0, 0.5, 0.25, 0.125)),
    ("retries", "5", "7", 9, (2, 5, 7, 9)),
    ("obey_robots", "false", "1", False, (True, False, True, False)),
    (
        "index_agent",
        '"Bingbot"',
        "Applebot",
        "DuckDuckBot",
        ("Googlebot", "Bingbot", "Applebot", "DuckDuckBot"),
    ),
    (
        "proxy",
        '"http://file:3128"',
        "http://env:3128",
        None,
        (None, "http://file:3128", "http://env:3128", None),
    ),
    (
        "headers",
        '{ "X-From" = "file" }',
        '{"X-From": "env"}',
        {"X-From": "flag"},
        ({}, {"X-From": "file"}, {"X-From": "env"}, {"X-From": "flag"}),
    ),
    (
        "headers",
        '["X-From: file", "Accept-Language: fr, en"]',
        "X-From: env, Accept-Language: de, en;q=0.5",
        {"X-From": "flag"},
        (
            {},
            {"X-From": "file", "Accept-Language": "fr, en"},
            {"X-From": "env", "Accept-Language": "de, en;q=0.5"},
            {"X-From": "flag"},
        ),
    ),
    (
        "resolve",
        '["a.test=127.0.0.2"]',
        "a.test=127.0.0.3, B.test=[::1]",
        {"a.test": "127.0.0.4"},
        ({}, {"a.test": "127.0.0.2"}, {"a.test": "127.0.0.3", "b.test": "::1"}, {"a.test": "127.0.0.4"}),
    ),
    ("confirm_runs", "3", "4", 5, (2, 3, 4, 5)),
    (
        "notify",
        '"https://hooks.example/file"',
        "http://hooks.example/env",
        None,
        (None, "https://hooks.example/file", "http://hooks.example/env", None),
    ),
    (
        "notify_format",
        '"slack"',
        "JSON",
        "slack",
        (NotifyFormat.JSON, NotifyFormat.SLACK, NotifyFormat.JSON, NotifyFormat.SLACK),
    ),
    (
        "brand_terms",
        '["Acme", "Acme Shoes"]',
        "acme, , acme running ,",
        ["flag"],
        ((), ("Acme", "Acme Shoes"), ("acme", "acme running"), ("flag",)),
    ),
    ("archive", '"evidence"', "", "flagged", (None, Path("evidence"), None, Path("flagged"))),
    (
        "render",
        '"auto"',
        "always",
        "off",
        (RenderMode.OFF, RenderMode.AUTO, RenderMode.ALWAYS, RenderMode.OFF),
    ),
    ("render_timeout", "5", "2.5", 1, (20.0, 5.0, 2.5, 1.0)),
    ("lease", "3", "10.5", 90, (60.0, 3.0, 10.5, 90.0)),
]


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crawler.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestPrecedence:
    @pytest.mark.parametrize(("name", "in_file", "in_env", "in_flags", "expected"), MATRIX)
    def test_each_layer_overrides_the_one_below(
        self,
        tmp_path: Path,
        name: str,
        in_file: str,
        in_env: str,
        in_flags: object,
        expected: tuple[object, ...],
    ) -> None:
        """Defaults, then file, then environment, then flags: each layer wins over the ones below it."""
        file = _file(tmp_path, f"{name} = {in_file}\n")
        env = {f"CRAWLER_{name.upper()}": in_env}
        layers = [
            load_settings(environ={}),
            load_settings(file, environ={}),
            load_settings(file, environ=env),
            load_settings(file, environ=env, flags={name: in_flags}),
        ]
        assert [getattr(settings, name) for settings in layers] == list(expected)

    def test_layers_only_touch_what_they_set(self, tmp_path: Path) -> None:
        """A setting absent from a higher layer keeps the value of the lower one."""
        file = _file(tmp_path, "delay = 0.5\nretries = 4\n")
        settings = load_settings(file, environ={"CRAWLER_RETRIES": "6"}, flags={"concurrency": 3})
        assert (settings.delay, settings.retries, settings.concurrency) == (0.5, 6, 3)
        assert settings.per_host == Settings().per_host

    def test_no_layer_gives_the_defaults(self) -> None:
        """With nothing set, the settings are the dataclass defaults."""
        assert load_settings(environ={"PATH": "/bin", "HOME": "/home/x"}) == Settings()


class TestFile:
    def test_every_kind_reads_from_toml(self, tmp_path: Path) -> None:
        """Text, numbers, booleans, an empty proxy and tables all read from a TOML file."""
        text = (
            'user_agent = "acme-bot/2.0"\nconcurrency = 8\ntimeout = 5\nallow_private = true\nproxy = ""\n'
            '[resolve]\n"Example.COM" = "127.0.0.5"\n'
        )
        settings = load_settings(_file(tmp_path, text), environ={})
        assert settings.user_agent == "acme-bot/2.0"
        assert settings.concurrency == 8
        assert settings.timeout == 5.0
        assert isinstance(settings.timeout, float)
        assert settings.allow_private is True
        assert settings.proxy is None
        assert settings.resolve == {"example.com": "127.0.0.5"}

    @pytest.mark.parametrize(
        ("text", "named"),
        [
            ("delays = 1\n", "'delays' (did you mean 'delay'?)"),
            ("max-bytes = 10\n", "'max-bytes'"),
            ("[crawler]\ndelay = 1\n", "'crawler'"),
            ('concurrency = "8"\n', "concurrency: expected a whole number"),
            ("concurrency = 1.5\n", "concurrency: expected a whole number"),
            ("concurrency = true\n", "concurrency: expected a whole number"),
            ("obey_robots = 1\n", "obey_robots: expected true or false"),
            ('delay = "fast"\n', "delay: expected a number"),
            ("delay = -1\n", "delay must not be negative"),
            ("per_host = 0\n", "per_host must be greater than 0"),
            ("headers = { X-A = 1 }\n", "headers: expected names mapped to text values"),
            ('headers = ["X-A 1"]\n', "headers: expected NAME: VALUE items"),
            ('brand_terms = "acme"\n', "brand_terms: expected a list of text"),
            ("brand_terms = [1]\n", "brand_terms: expected a list of text"),
            ('render = "sometimes"\n', "render: expected one of off, auto, always"),
            ("archive = 1\n", "archive: expected a path"),
            ('user_agent = "/1.0"\n', "user_agent must start with a product token"),
            ("delay = \n", "not valid TOML"),
        ],
    )
    def test_unknown_or_bad_setting_is_named_with_the_file(
        self, tmp_path: Path, text: str, named: str
    ) -> None:
        """An unknown key or a bad value in the file is an error naming the file and the setting."""
        file = _file(tmp_path, text)
        with pytest.raises(ConfigError) as error:
            load_settings(file, environ={})
        assert str(file) in str(error.value)
        assert named in str(error.value)

    def test_missing_file_is_an_error(self, tmp_path: Path) -> None:
        """A config file that does not exist is an error, not silently skipped."""
        with pytest.raises(ConfigError, match="cannot read it"):
            load_settings(tmp_path / "absent.toml", environ={})


class TestEnvironment:
    @pytest.mark.parametrize(
        ("text", "value"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False)]
    )
    def test_boolean_forms(self, text: str, value: bool) -> None:
        """Booleans in the environment are true/false/1/0, case-insensitive."""
        assert load_settings(environ={"CRAWLER_ALLOW_PRIVATE": text}).allow_private is value

    @pytest.mark.parametrize(
        ("variable", "text", "named"),
        [
            ("CRAWLER_FOO", "1", "CRAWLER_FOO: unknown setting 'foo'"),
            ("CRAWLER_DELAYS", "1", "did you mean 'delay'?"),
            ("CRAWLER_DELAY", "soon", "CRAWLER_DELAY: delay: expected a number"),
            ("CRAWLER_DELAY", "nan", "CRAWLER_DELAY: delay: expected a finite number"),
            ("CRAWLER_DELAY", "-2", "CRAWLER_DELAY: delay must not be negative"),
            ("CRAWLER_RETRIES", "2.5", "CRAWLER_RETRIES: retries: expected a whole number"),
            ("CRAWLER_OBEY_ROBOTS", "yes", "CRAWLER_OBEY_ROBOTS: obey_robots: expected true, false, 1 or 0"),
            ("CRAWLER_HEADERS", "{X-A: 1}", "CRAWLER_HEADERS: headers: expected a JSON object"),
            ("CRAWLER_HEADERS", "X-A 1", "CRAWLER_HEADERS: headers: expected NAME: VALUE items"),
            ("CRAWLER_RESOLVE", "a.test=127.0.0.2, b.test", "resolve: expected HOST=ADDRESS items"),
            ("CRAWLER_WORKERS", "two", "CRAWLER_WORKERS: workers: expected a whole number"),
            (
                "CRAWLER_RESOLVE",
                '{"a.example": 5}',
                "CRAWLER_RESOLVE: resolve: expected names mapped to text",
            ),
        ],
    )
    def test_unknown_or_bad_variable_is_named(self, variable: str, text: str, named: str) -> None:
        """An unknown CRAWLER_ variable or a bad value is an error naming the variable."""
        with pytest.raises(ConfigError) as error:
            load_settings(environ={variable: text})
        assert named in str(error.value)

    def test_other_variables_are_not_settings(self) -> None:
        """Variables without the prefix, and the command line's own CRAWLER_ options, are not settings."""
        environ = {
            "DELAY": "x",
            "CRAWLER_CONFIG": "x.toml",
            "CRAWLER_DB": "x.sqlite",
            "CRAWLER_LOG_FORMAT": "json",
        }
        assert load_settings(environ=environ) == Settings()

    def test_mapping_as_json(self) -> None:
        """A mapping may still be the JSON object of earlier versions (no item starts with `{`)."""
        settings = load_settings(environ={"CRAWLER_HEADERS": '{"Accept-Language": "fr, en;q=0.5"}'})
        assert settings.headers == {"Accept-Language": "fr, en;q=0.5"}

    @pytest.mark.parametrize(
        ("text", "headers"),
        [
            ("X-A: 1", {"X-A": "1"}),
            ("X-A: 1, X-B: two words", {"X-A": "1", "X-B": "two words"}),
            ("Accept-Language: fr, en;q=0.5", {"Accept-Language": "fr, en;q=0.5"}),
            ("Accept: text/html, */*;q=0.1, X-B:2", {"Accept": "text/html, */*;q=0.1", "X-B": "2"}),
            (
                "Link: <https://a.test/x>, <https://b.test/>",
                {"Link": "<https://a.test/x>, <https://b.test/>"},
            ),
            ("X-Empty:", {"X-Empty": ""}),
            ("", {}),
        ],
    )
    def test_headers_comma_separated(self, text: str, headers: dict[str, str]) -> None:
        """Headers are `NAME: VALUE` items; a comma starts a new one only before `Name:`."""
        assert load_settings(environ={"CRAWLER_HEADERS": text}).headers == headers

    def test_env_option_refuses_settings(self) -> None:
        """Only the command line's own options are read through env_option."""
        assert config.env_option("CRAWLER_DB", {"CRAWLER_DB": "a.sqlite"}) == "a.sqlite"
        with pytest.raises(KeyError):
            config.env_option("CRAWLER_DELAY", {})


class TestFlags:
    def test_bad_flag_value_names_the_flag(self) -> None:
        """A flag value the Settings checks refuse is an error naming the flag."""
        with pytest.raises(ConfigError, match="option --max-redirects: max_redirects must be greater than 0"):
            load_settings(environ={}, flags={"max_redirects": 0})

    def test_flag_text_is_read_as_text(self) -> None:
        """A flag's text is parsed here, so its errors are one ConfigError line, not argparse's usage."""
        settings = load_settings(environ={}, flags={"delay": "0.5", "brand_terms": "a, b", "render": "auto"})
        assert (settings.delay, settings.brand_terms, settings.render) == (0.5, ("a", "b"), RenderMode.AUTO)
        with pytest.raises(ConfigError, match="option --delay: delay: expected a finite number"):
            load_settings(environ={}, flags={"delay": "nan"})

    def test_repeated_mapping_flags_merge(self) -> None:
        """`--header` given again and again: each text is comma-separated items, merged in order."""
        texts = ["X-A: 1, X-B: 2", "Accept-Language: fr, en", "X-A: 3"]
        headers = load_settings(environ={}, flags={"headers": texts}).headers
        assert headers == {"X-A": "3", "X-B": "2", "Accept-Language": "fr, en"}
        with pytest.raises(ConfigError, match="option --resolve: resolve: expected HOST=ADDRESS"):
            load_settings(environ={}, flags={"resolve": ["a.test=127.0.0.2", "b.test"]})


class TestSpecs:
    def test_specs_cover_every_field(self) -> None:
        """Every Settings field has a spec, a help line, a variable and a flag."""
        names = [spec.name for spec in SPECS]
        assert names == [field.name for field in dataclasses.fields(Settings)]
        for spec in SPECS:
            assert spec.help
            assert spec.env == "CRAWLER_" + spec.name.upper()
            assert spec.flag == "--" + spec.name.replace("_", "-")

    def test_text_forms_round_trip(self) -> None:
        """Every default, written as text, loads back to itself (so `from_text` covers every kind)."""
        for spec in SPECS:
            if spec.kind is Kind.MAPPING:
                text = ""
            elif spec.kind is Kind.BOOL:
                text = "true" if spec.default else "false"
            elif spec.kind is Kind.LIST:
                text = ",".join(spec.default)  # type: ignore[arg-type]
            else:
                text = "" if spec.default is None else str(spec.default)
            assert load_settings(environ={spec.env: text}) == Settings(), spec.name

    def test_new_kinds_are_described(self) -> None:
        """Choices list their words; mappings say how an item is written; machine defaults are words."""
        by_name = {spec.name: spec for spec in SPECS}
        assert by_name["render"].choices == ("off", "auto", "always")
        assert by_name["notify_format"].choices == ("json", "slack")
        assert (by_name["headers"].item_form, by_name["resolve"].item_form) == ("NAME: VALUE", "HOST=ADDRESS")
        assert by_name["workers"].default_text == "the CPU cores available to the process, at most 8"
        shown = {name: by_name[name].default_text for name in ("delay", "proxy", "brand_terms", "render")}
        assert shown == {"delay": "1.0", "proxy": "none", "brand_terms": "none", "render": "off"}
        assert (by_name["obey_robots"].default_text, by_name["retries"].default_text) == ("true", "2")
        assert not hasattr(by_name["delay"], "typed")


class TestShippedFile:
    def test_config_file_is_generated_from_the_settings(self) -> None:
        """config/crawler.toml lists every setting with its default and comment, exactly as rendered."""
        shipped = (ROOT / "config" / "crawler.toml").read_text(encoding="utf-8")
        assert shipped == render_toml()
        assert set(tomllib.loads(shipped)) == {spec.name for spec in SPECS} - set(config.DEFAULT_TEXT)

    def test_machine_defaults_are_not_baked_in(self) -> None:
        """`workers` is a commented line saying its default in words, not this machine's number."""
        shipped = (ROOT / "config" / "crawler.toml").read_text(encoding="utf-8")
        line = next(line for line in shipped.splitlines() if "workers =" in line)
        assert line.startswith("# workers = ")
        assert line.endswith("# unset: the CPU cores available to the process, at most 8")
        assert f"workers = {Settings().workers}\n" in render_toml(Settings())  # effective settings

    def test_readme_documents_every_setting(self) -> None:
        """The README's configuration table has a row for every setting: key, variable, flag and help."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        for spec in SPECS:
            row = next((line for line in readme.splitlines() if line.startswith(f"| `{spec.name}` |")), "")
            assert f"`{spec.env}`" in row
            assert spec.help in row
            assert spec.flag in row or spec.name in ("headers",)
        assert "`--header 'NAME: VALUE'`" in readme

    def test_config_file_loads_to_the_defaults(self) -> None:
        """Loading the shipped file changes nothing."""
        assert load_settings(ROOT / "config" / "crawler.toml", environ={}) == Settings()

    def test_rendered_settings_read_back(self, tmp_path: Path) -> None:
        """render_toml writes any settings so that load_settings reads the same values back."""
        settings = Settings(
            proxy="http://proxy:3128",
            headers={"X-Q": 'a\\b "c"'},
            delay=5e-05,
            obey_robots=False,
            notify="https://hooks.example/T/B/x",
            notify_format=NotifyFormat.SLACK,
            brand_terms=("Acme", 'say "acme"'),
            archive=tmp_path / "evidence",
            render=RenderMode.AUTO,
            browser=tmp_path / "chrome",
            workers=3,
            lease=3,
        )
        assert load_settings(_file(tmp_path, render_toml(settings)), environ={}) == settings


def _crawler_settings(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    return subprocess.run(
        [sys.executable, "-m", "crawler", "settings", *args],
        env={**environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


class TestCommandLine:
    def test_precedence_through_the_command(self, tmp_path: Path) -> None:
        """`crawler settings` shows file < environment < flags for numbers, booleans, text and tables."""
        file = _file(
            tmp_path,
            'delay = 0.5\nretries = 5\nobey_robots = false\nindex_agent = "Bingbot"\n'
            '[headers]\nX-From = "file"\n[resolve]\n"a.example" = "127.0.0.9"\n',
        )
        env = {"CRAWLER_CONFIG": str(file), "CRAWLER_RETRIES": "7", "CRAWLER_INDEX_AGENT": "Applebot"}
        flags = ["--retries", "9", "--obey-robots", "--header", "X-From: flag", "--header", "X-Two: 2"]
        done = _crawler_settings(*flags, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        shown = tomllib.loads(done.stdout)
        assert shown["delay"] == 0.5  # file
        assert shown["retries"] == 9  # flag over environment over file
        assert shown["index_agent"] == "Applebot"  # environment over file
        assert shown["obey_robots"] is True  # flag over file
        assert shown["headers"] == {"X-From": "flag", "X-Two": "2"}  # flags replace the file's table
        assert shown["resolve"] == {"a.example": "127.0.0.9"}
        assert shown["concurrency"] == Settings().concurrency  # default

    def test_config_flag_beats_the_variable(self, tmp_path: Path) -> None:
        """--config FILE is read instead of $CRAWLER_CONFIG."""
        named = _file(tmp_path, "delay = 3.0\n")
        other = tmp_path / "other.toml"
        other.write_text("delay = 4.0\n", encoding="utf-8")
        done = _crawler_settings("--config", str(named), env={"CRAWLER_CONFIG": str(other)}, cwd=tmp_path)
        assert tomllib.loads(done.stdout)["delay"] == 3.0

    @pytest.mark.parametrize(
        ("args", "env", "file", "named"),
        [
            ((), {"CRAWLER_FOO": "1"}, None, "CRAWLER_FOO: unknown setting 'foo'"),
            ((), {"CRAWLER_DELAY": "x"}, None, "CRAWLER_DELAY: delay: expected a number"),
            ((), {}, "foo = 1\n", "unknown setting 'foo'"),
            ((), {}, "retries = -1\n", "retries must not be negative"),
            (("--foo", "1"), {}, None, "unrecognized arguments: --foo"),
            (("--delay", "x"), {}, None, "delay: expected a number"),
            (("--allow-private", "yes"), {}, None, "unrecognized arguments: yes"),
            (("--timeout", "0"), {}, None, "option --timeout: timeout must be greater than 0"),
            (("--resolve", "a.example"), {}, None, "--resolve: resolve: expected"),
        ],
    )
    def test_bad_settings_exit_2_naming_them(
        self, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], file: str | None, named: str
    ) -> None:
        """An unknown setting or a bad value in any layer exits 2 with a message naming it."""
        if file is not None:
            args = ("--config", str(_file(tmp_path, file)), *args)
        done = _crawler_settings(*args, env=env, cwd=tmp_path)
        assert done.returncode == 2
        assert named in done.stderr
        assert done.stdout == ""


# Refused in every form: (setting, library value, TOML value, text for the environment and a flag
# or None where text can't say it, what the one-line message must contain).
SECRET = "s3cret"
REFUSED: list[tuple[str, object, str, str | None, str]] = [
    ("delay", math.nan, "nan", "nan", "delay: expected a finite number"),
    ("delay", math.inf, "inf", "inf", "delay: expected a finite number"),
    ("timeout", math.nan, "nan", "nan", "timeout: expected a finite number"),
    ("render_timeout", -math.inf, "-inf", "-inf", "render_timeout: expected a finite number"),
    ("lease", math.inf, "inf", "inf", "lease: expected a finite number"),
    ("proxy", "notaurl", '"notaurl"', "notaurl", "proxy: expected an http:// or https:// URL"),
    (
        "proxy",
        f"socks5://user:{SECRET}@proxy.test:1080",
        f'"socks5://user:{SECRET}@proxy.test:1080"',
        f"socks5://user:{SECRET}@proxy.test:1080",
        "proxy: expected an http:// or https:// URL with a host, got 'socks5://[redacted]@proxy.test:1080'",
    ),
    ("proxy", "ftp://x", '"ftp://x"', "ftp://x", "proxy: expected an http:// or https:// URL"),
    ("proxy", "http://", '"http://"', "http://", "there is no host"),
    ("proxy", f"http://u:{SECRET}@p.test:99999", f'"http://u:{SECRET}@p.test:99999"', None, "proxy:"),
    ("resolve", {"a.test": "a.example"}, '{ "a.test" = "a.example" }', "a.test=a.example", "resolve: a.test"),
    ("resolve", {"a.test:80": "127.0.0.1"}, '{ "a.test:80" = "127.0.0.1" }', None, "resolve: 'a.test:80'"),
    ("user_agent", "bot/1\r\nX-Evil: 1", '"bot/1\\r\\nX-Evil: 1"', "bot/1\r\nX-Evil: 1", "user_agent:"),
    ("user_agent", "bot/1\nX: 1", '"bot/1\\nX: 1"', "bot/1\nX: 1", "user_agent: the value contains a"),
    ("index_agent", "", '""', "", "index_agent must not be empty"),
    (
        "headers",
        {"Authorization": f"Bearer {SECRET}\r\nX-Evil: 1"},
        f'{{ Authorization = "Bearer {SECRET}\\r\\nX-Evil: 1" }}',
        f"Authorization: Bearer {SECRET}\r\nX-Evil: 1",
        "headers: the value of Authorization contains a control character",
    ),
    ("headers", {"X A": "1"}, '{ "X A" = "1" }', "X A: 1", "headers: 'X A' is not a header name"),
    ("headers", {"X\nA": "1"}, '{ "X\\nA" = "1" }', None, "is not a header name"),
    ("max_header_bytes", 1, "1", "1", "max_header_bytes must be at least 8192"),
    ("max_header_bytes", 8191, "8191", "8191", "max_header_bytes must be at least 8192"),
    ("confirm_runs", 0, "0", "0", "confirm_runs must be greater than 0"),
    ("unreachable_runs", 0, "0", "0", "unreachable_runs must be greater than 0"),
    (
        "notify",
        f"ftp://hooks.test/{SECRET}",
        f'"ftp://hooks.test/{SECRET}"',
        f"ftp://hooks.test/{SECRET}",
        "notify: expected an http:// or https:// URL with a host: the scheme is 'ftp'",
    ),
    ("notify", f"hooks.test/{SECRET}", f'"hooks.test/{SECRET}"', f"hooks.test/{SECRET}", "notify:"),
    ("notify_format", "xml", '"xml"', "xml", "notify_format: expected one of json, slack"),
    ("brand_terms", ["acme", " "], '["acme", " "]', None, "brand_terms: a term is empty"),
    ("brand_terms", ["ac\nme"], '["ac\\nme"]', None, "brand_terms: a term contains a control character"),
    ("archive", "ev\0idence", '"ev\\u0000idence"', None, "archive: the path contains a NUL character"),
    ("archive_max_bytes", 1000, "1000", "1000", "archive_max_bytes must be at least 1048576"),
    ("render", "sometimes", '"sometimes"', "sometimes", "render: expected one of off, auto, always"),
    ("browser", "chro\0me", '"chro\\u0000me"', None, "browser: the path contains a NUL character"),
    ("render_timeout", 0, "0", "0", "render_timeout must be greater than 0"),
    ("render_concurrency", 0, "0", "0", "render_concurrency must be greater than 0"),
    ("workers", 0, "0", "0", "workers must be greater than 0"),
    ("workers", 1.5, "1.5", "1.5", "workers: expected a whole number"),
    ("lease", 2.9, "2.9", "2.9", "lease must be at least 3"),
]


def _refused_id(case: tuple[str, object, str, str | None, str]) -> str:
    return f"{case[0]}={case[2]}"


class TestRefused:
    @pytest.mark.parametrize("case", REFUSED, ids=_refused_id)
    def test_library(self, case: tuple[str, Any, str, str | None, str]) -> None:
        """`Settings(...)` itself refuses the value with a ConfigError naming the setting."""
        name, value, _, _, named = case
        with pytest.raises(ConfigError) as error:
            Settings(**{name: value})
        assert named in str(error.value)
        assert SECRET not in str(error.value)

    @pytest.mark.parametrize("case", REFUSED, ids=_refused_id)
    def test_file(self, tmp_path: Path, case: tuple[str, Any, str, str | None, str]) -> None:
        """The same value in a TOML file is refused, naming the file and the setting."""
        name, _, toml, _, named = case
        file = _file(tmp_path, f"{name} = {toml}\n")
        with pytest.raises(ConfigError) as error:
            load_settings(file, environ={})
        assert f"config file {file}: " in str(error.value)
        assert named in str(error.value)
        assert SECRET not in str(error.value)

    @pytest.mark.parametrize("case", [case for case in REFUSED if case[3] is not None], ids=_refused_id)
    def test_environment(self, case: tuple[str, Any, str, str, str]) -> None:
        """The same value in a CRAWLER_ variable is refused, naming the variable and the setting."""
        name, _, _, text, named = case
        with pytest.raises(ConfigError) as error:
            load_settings(environ={f"CRAWLER_{name.upper()}": text})
        assert f"environment variable CRAWLER_{name.upper()}: " in str(error.value)
        assert named in str(error.value)
        assert SECRET not in str(error.value)

    @pytest.mark.parametrize("case", [case for case in REFUSED if case[3] is not None], ids=_refused_id)
    def test_flag(self, tmp_path: Path, case: tuple[str, Any, str, str, str]) -> None:
        """The same value as a flag of the real command exits 2 with one line naming it, no traceback."""
        name, _, _, text, named = case
        flag = {"headers": "--header", "resolve": "--resolve"}.get(name, "--" + name.replace("_", "-"))
        file = _file(tmp_path, "delay = 0.5\n")
        done = _crawler_settings("--config", str(file), f"{flag}={text}", cwd=tmp_path)
        _assert_one_line_error(done, named)

    def test_file_and_environment_through_the_command(self, tmp_path: Path) -> None:
        """Through `python -m crawler settings`, a file's nan and a variable's socks5 proxy exit 2."""
        done = _crawler_settings("--config", str(_file(tmp_path, "delay = nan\n")), cwd=tmp_path)
        _assert_one_line_error(done, "delay: expected a finite number")
        proxy = f"socks5://user:{SECRET}@proxy.test:1080"
        done = _crawler_settings(env={"CRAWLER_PROXY": proxy}, cwd=tmp_path)
        _assert_one_line_error(done, "environment variable CRAWLER_PROXY: proxy: expected an http://")

    def test_accepted_edges(self) -> None:
        """What the checks let through: credentials, https proxies, IPv6, the minimums themselves."""
        settings = Settings(
            proxy="https://user:pass%2Fword@proxy.test:8443/",
            resolve={"A.Test": " [2001:db8::1] ", "b.test": "10.0.0.1"},
            headers={"X-Tab": "a\tb", "Accept": "*/*"},
            max_header_bytes=8192,
            archive_max_bytes=1024 * 1024,
            lease=3,
            user_agent="bot/1 (+https://bot.test; \u00e9t\u00e9)",
        )
        assert settings.resolve == {"a.test": "2001:db8::1", "b.test": "10.0.0.1"}
        assert settings.lease == 3.0
        assert isinstance(settings.lease, float)


def _assert_one_line_error(done: subprocess.CompletedProcess[str], named: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert named in done.stderr
    assert SECRET not in done.stderr


class TestNotUtf8:
    def test_config_file_not_utf8_is_named(self, tmp_path: Path) -> None:
        """A Latin-1 config file is a ConfigError naming the file and the first bad byte."""
        file = tmp_path / "latin1.toml"
        file.write_bytes("delay = 1.0\n# caf\u00e9\n".encode("latin-1"))
        with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8 text \(byte 0xe9 at offset 17\)"):
            load_settings(file, environ={})

    def test_byte_order_mark_is_accepted(self, tmp_path: Path) -> None:
        """A UTF-8 file starting with a byte-order mark (as Notepad saves it) reads."""
        file = tmp_path / "bom.toml"
        file.write_bytes(b"\xef\xbb\xbfdelay = 2.5\n")
        assert load_settings(file, environ={}).delay == 2.5

    def test_through_the_command(self, tmp_path: Path) -> None:
        """`crawler settings --config latin1.toml` exits 2 with one line, no traceback."""
        file = tmp_path / "latin1.toml"
        file.write_bytes(b'index_agent = "Googlebot"\n# \xff\n')
        done = _crawler_settings("--config", str(file), cwd=tmp_path)
        _assert_one_line_error(done, "latin1.toml: not UTF-8 text (byte 0xff")


class TestRecord:
    def test_secrets_are_redacted(self) -> None:
        """Proxy credentials, header values and the notify URL's path never reach the stored record."""
        settings = Settings(
            proxy=f"http://user:{SECRET}@proxy.test:3128",
            headers={"Authorization": f"Bearer {SECRET}", "Accept-Language": "fr"},
            notify=f"https://hooks.slack.test/services/T0/B0/{SECRET}?token={SECRET}",
        )
        record = settings.record()
        assert record["proxy"] == "http://[redacted]@proxy.test:3128"
        assert record["headers"] == ["Accept-Language", "Authorization"]
        assert record["notify"] == "https://hooks.slack.test/[redacted]"
        assert SECRET not in json.dumps(record)

    def test_webhook_credentials_and_port(self) -> None:
        """A notify URL keeps its scheme, host and port only; userinfo goes too."""
        record = Settings(notify=f"http://me:{SECRET}@hooks.test:8080/x#{SECRET}").record()
        assert record["notify"] == "http://hooks.test:8080/[redacted]"

    def test_record_is_json_of_every_setting(self) -> None:
        """Every setting is in the record, as a JSON value; nothing secret, nothing dropped."""
        loose: dict[str, Any] = {"brand_terms": ["Acme"], "archive": "evidence", "render": "always"}
        settings = Settings(resolve={"a.test": "127.0.0.2"}, **loose)
        record = settings.record()
        assert list(record) == [spec.name for spec in SPECS]
        assert json.loads(json.dumps(record)) == record
        assert (record["brand_terms"], record["archive"], record["render"]) == (
            ["Acme"],
            "evidence",
            "always",
        )
        assert (record["proxy"], record["notify"], record["resolve"]) == (None, None, {"a.test": "127.0.0.2"})

    def test_proxy_without_credentials_is_kept(self) -> None:
        """A proxy URL without credentials is stored as written."""
        assert Settings(proxy="http://proxy.test:3128").record()["proxy"] == "http://proxy.test:3128"


class TestNewSettings:
    def test_defaults(self) -> None:
        """The defaults of sections 9 to 13."""
        settings = Settings()
        assert (settings.confirm_runs, settings.unreachable_runs) == (2, 3)
        assert (settings.notify, settings.notify_format) == (None, NotifyFormat.JSON)
        assert settings.brand_terms == ()
        assert (settings.archive, settings.archive_max_bytes) == (None, 1024**3)
        assert (settings.render, settings.browser) == (RenderMode.OFF, None)
        assert (settings.render_timeout, settings.render_concurrency) == (20.0, 2)
        assert settings.workers == default_workers()
        assert settings.lease == 60.0

    def test_library_values_take_the_field_types(self) -> None:
        """Untyped callers (JSON, a dict of words) get enums, tuples, paths and floats; "" is none."""
        loose: dict[str, Any] = {
            "notify_format": "Slack",
            "render": " auto",
            "brand_terms": [" Acme "],
            "archive": "ev",
            "browser": "",
            "lease": 10,
        }
        settings = Settings(**loose)
        assert (settings.notify_format, settings.render) == (NotifyFormat.SLACK, RenderMode.AUTO)
        assert (settings.brand_terms, settings.archive, settings.browser) == (("Acme",), Path("ev"), None)
        assert isinstance(settings.lease, float)
        assert Settings(notify="") == Settings()


def _cgroup(tmp_path: Path, files: dict[str, str], membership: str = "0::/\n") -> tuple[Path, Path]:
    """A cgroup v2 tree under `tmp_path` with `cpu.max` files, and a /proc/self/cgroup naming one."""
    root = tmp_path / "cgroup"
    for relative, text in files.items():
        (root / relative).mkdir(parents=True, exist_ok=True)
        (root / relative / "cpu.max").write_text(text, encoding="ascii")
    root.mkdir(exist_ok=True)
    (tmp_path / "self-cgroup").write_text(membership, encoding="ascii")
    return root, tmp_path / "self-cgroup"


class TestWorkers:
    @pytest.mark.parametrize(
        ("cores", "cpu_max", "workers"),
        [
            (6, None, 6),
            (12, None, 8),
            (6, "max 100000\n", 6),
            (6, "200000 100000\n", 2),
            (6, "150000 100000\n", 2),
            (6, "50000 100000\n", 1),
            (2, "800000 100000\n", 2),
            (16, "1600000 100000\n", 8),
            (6, "garbage\n", 6),
            (6, "100000 0\n", 6),
        ],
    )
    def test_cores_lowered_by_quota_capped_at_8(
        self, tmp_path: Path, cores: int, cpu_max: str | None, workers: int
    ) -> None:
        """Cores, lowered by a cgroup v2 cpu.max quota rounded up, at most 8; "max" or junk is no quota."""
        root, membership = _cgroup(tmp_path, {} if cpu_max is None else {".": cpu_max})
        assert default_workers(cores, root=root, membership=membership) == workers

    def test_quota_of_the_process_cgroup_and_its_ancestors(self, tmp_path: Path) -> None:
        """Outside a cgroup namespace, the process's own cgroup and every ancestor's quota count."""
        files = {"app.slice": "300000 100000\n", "app.slice/crawl.service": "max 100000\n"}
        root, membership = _cgroup(tmp_path, files, membership="0::/app.slice/crawl.service\n")
        assert default_workers(6, root=root, membership=membership) == 3
        (root / "app.slice/crawl.service/cpu.max").write_text("100000 100000\n", encoding="ascii")
        assert default_workers(6, root=root, membership=membership) == 1

    def test_affinity_is_the_default_count(self, tmp_path: Path) -> None:
        """Without `cores`, the process's CPU affinity is counted."""
        affinity = len(os.sched_getaffinity(0))
        root, membership = _cgroup(tmp_path, {})
        assert default_workers(root=root, membership=membership) == min(affinity, 8)
        (root / "cpu.max").write_text("100000 100000\n", encoding="ascii")
        assert default_workers(root=root, membership=membership) == 1

    def test_missing_cgroup_files_are_no_quota(self, tmp_path: Path) -> None:
        """No cgroup v2 files (cgroup v1, macOS) means no quota."""
        assert default_workers(5, root=tmp_path / "absent", membership=tmp_path / "absent-too") == 5
