"""Settings loading: defaults < config file < environment < flags, and every bad input named."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from crawler import config
from crawler.config import SPECS, ConfigError, Kind, Settings, load_settings, render_toml

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
            ("CRAWLER_HEADERS", "X-A: 1", "CRAWLER_HEADERS: headers: expected a JSON object"),
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
        """Mappings in the environment are JSON objects of text values."""
        settings = load_settings(environ={"CRAWLER_HEADERS": '{"Accept-Language": "fr, en;q=0.5"}'})
        assert settings.headers == {"Accept-Language": "fr, en;q=0.5"}

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
        """Every default, written as text, parses back to itself (so `from_text` covers every kind)."""
        for spec in SPECS:
            if spec.kind is Kind.MAPPING:
                text = "{}"
            elif spec.kind is Kind.BOOL:
                text = "true" if spec.default else "false"
            else:
                text = "" if spec.default is None else str(spec.default)
            assert spec.from_text(text) == spec.default


class TestShippedFile:
    def test_config_file_is_generated_from_the_settings(self) -> None:
        """config/crawler.toml lists every setting with its default and comment, exactly as rendered."""
        shipped = (ROOT / "config" / "crawler.toml").read_text(encoding="utf-8")
        assert shipped == render_toml()
        assert set(tomllib.loads(shipped)) == {spec.name for spec in SPECS}

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
            proxy="http://proxy:3128", headers={'X-"Q"': "a\\b"}, delay=5e-05, obey_robots=False
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
            (("--delay", "x"), {}, None, "argument --delay: expected a number"),
            (("--allow-private", "yes"), {}, None, "unrecognized arguments: yes"),
            (("--timeout", "0"), {}, None, "option --timeout: timeout must be greater than 0"),
            (("--resolve", "a.example"), {}, None, "argument --resolve: resolve: expected KEY=VALUE"),
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
