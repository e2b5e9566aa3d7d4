"""Contract, section 7: settings in a file, the environment and flags, their precedence, and exit 2
for an unknown setting or a bad value in each, through `python -m crawler` subprocesses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tomllib
from pathlib import Path

import pytest
from contract import TARGET, Done, cli, closed_port, linked, rows
from servers import Server, Servers, respond

import crawler

# Values every setting can take in a loopback run: each form of each setting is given one.
VALUES: dict[str, object] = {
    "user_agent": "backlink-crawler/9 (+https://x.test)",
    "index_agent": "Googlebot",
    "concurrency": 8,
    "per_host": 1,
    "delay": 0.0,
    "max_crawl_delay": 5.0,
    "timeout": 5.0,
    "connect_timeout": 2.0,
    "retries": 0,
    "max_retry_after": 1.0,
    "max_redirects": 5,
    "max_bytes": 1_000_000,
    "obey_robots": True,
    "allow_private": True,
}
"""The settings section 6 names, with a value for a fast loopback run."""


@pytest.fixture
async def site(servers: Servers) -> Server:
    robots = respond("User-agent: *\nDisallow: /private\n", content_type="text/plain")
    return await servers.app({"/robots.txt": robots, "/": respond(linked()), "/private": respond(linked())})


def claims(tmp_path: Path, site: Server, path: str = "/", file: str = "claims.csv") -> str:
    (tmp_path / file).write_text(f"source_url,target_url\n{site.url(path)},{TARGET}\n")
    return file


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def agents(site: Server) -> set[str]:
    return {hit.headers["User-Agent"] for hit in site.log.hits if hit.headers and hit.path == "/"}


def statuses(done: Done) -> list[tuple[str, str | None]]:
    assert done.code == 0, done.stderr
    return [(record["status"], record["reason"]) for record in done.jsonl()]


class TestThreeForms:
    async def test_every_setting_in_file_environment_and_flags(self, site: Server, tmp_path: Path) -> None:
        """Each section 6 setting, headers and resolve too, is accepted in a file, a variable and a flag."""
        assert set(VALUES) <= {f.name for f in dataclasses.fields(crawler.Settings)}
        (tmp_path / "claims.csv").write_text(f"source_url,target_url\n{site.named('blog.test')},{TARGET}\n")
        lines = [f"{key} = {toml_value(v)}\n" for key, v in VALUES.items()]
        tables = '[headers]\nX-Form = "file"\n[resolve]\n"blog.test" = "127.0.0.2"\n'
        (tmp_path / "all.toml").write_text("".join(lines) + tables)
        env = {f"CRAWLER_{key.upper()}": toml_value(v).strip('"') for key, v in VALUES.items()}
        env |= {"CRAWLER_HEADERS": '{"X-Form": "env"}', "CRAWLER_RESOLVE": '{"blog.test": "127.0.0.2"}'}
        flags = ["--header", "X-Form: flag", "--resolve", "blog.test=127.0.0.2"]
        for key, value in VALUES.items():
            flag = "--" + key.replace("_", "-")
            flags += (
                [flag if value else f"--no-{flag[2:]}"] if isinstance(value, bool) else [flag, str(value)]
            )
        runs = await asyncio.gather(
            cli(
                "verify",
                "claims.csv",
                "--db",
                "f.sqlite",
                "--config",
                "all.toml",
                "--output",
                "-",
                cwd=tmp_path,
            ),
            cli("verify", "claims.csv", "--db", "e.sqlite", "--output", "-", cwd=tmp_path, env=env),
            cli("verify", "claims.csv", "--db", "a.sqlite", "--output", "-", *flags, cwd=tmp_path),
        )
        assert [statuses(done) for done in runs] == [[("verified", None)]] * 3
        pages = [hit.headers for hit in site.log.hits if hit.path == "/" and hit.headers]
        assert {headers["User-Agent"] for headers in pages} == {VALUES["user_agent"]}
        assert sorted(headers["X-Form"] for headers in pages) == ["env", "file", "flag"]
        assert {headers["Host"] for headers in pages} == {f"blog.test:{site.port}"}

    async def test_precedence(self, servers: Servers, tmp_path: Path) -> None:
        """defaults < config file < CRAWLER_ variables < flags, seen in the User-Agent the server got."""
        (tmp_path / "c.toml").write_text('user_agent = "FileBot/1"\n')
        env = {"CRAWLER_CONFIG": "c.toml"}
        by_env = env | {"CRAWLER_USER_AGENT": "EnvBot/1"}
        cases = [
            ({}, [], crawler.Settings().user_agent),
            (env, [], "FileBot/1"),
            (by_env, [], "EnvBot/1"),
            (by_env, ["--user-agent", "FlagBot/1"], "FlagBot/1"),
        ]
        sites, runs = [], []
        for n, (extra, options, _) in enumerate(cases):
            sites.append(await servers.app({"/": respond(linked())}, host=f"127.0.0.{n + 2}"))
            name = claims(tmp_path, sites[-1], file=f"{n}.csv")
            runs.append(cli("verify", name, "--db", f"{n}.sqlite", *options, cwd=tmp_path, env=extra))
        for done, seen, (_, _, agent) in zip(await asyncio.gather(*runs), sites, cases, strict=True):
            assert done.code == 0, done.stderr
            assert agents(seen) == {agent}

    async def test_booleans(self, site: Server, tmp_path: Path) -> None:
        """Booleans: true/false/1/0 in the environment, --x/--no-x flags beating it."""
        name = claims(tmp_path, site, "/private")
        cases: list[tuple[dict[str, str], list[str]]] = [
            ({"CRAWLER_OBEY_ROBOTS": "0"}, []),
            ({"CRAWLER_OBEY_ROBOTS": "1"}, []),
            ({}, ["--no-allow-private"]),
            ({"CRAWLER_OBEY_ROBOTS": "true"}, ["--no-obey-robots"]),
            ({"CRAWLER_ALLOW_PRIVATE": "false", "CRAWLER_OBEY_ROBOTS": "False"}, ["--allow-private"]),
        ]
        runs = await asyncio.gather(
            *(
                cli("verify", name, "--db", f"{n}.sqlite", "--output", "-", *flags, cwd=tmp_path, env=env)
                for n, (env, flags) in enumerate(cases)
            )
        )
        assert [statuses(done)[0] for done in runs] == [
            ("not_indexable", None),  # robots not obeyed for us; Googlebot is still disallowed there
            ("blocked", "robots_disallowed"),
            ("blocked", "forbidden_address"),
            ("not_indexable", None),
            ("not_indexable", None),
        ]


NEW_VALUES: dict[str, tuple[str, str, list[str], object]] = {
    "confirm_runs": ("3", "4", ["--confirm-runs", "5"], 5),
    "unreachable_runs": ("4", "5", [], 5),
    "notify": ('"https://hooks.test/file"', "https://hooks.test/env", [], "https://hooks.test/env"),
    "notify_format": ('"slack"', "json", ["--notify-format", "slack"], "slack"),
    "brand_terms": ('["Acme"]', "acme, acme shoes", ["--brand-terms", "Acme Run,Acme"], ["Acme Run", "Acme"]),
    "archive": ('"file-evidence"', "env-evidence", [], "env-evidence"),
    "archive_max_bytes": ("2097152", "", ["--archive-max-bytes", "3145728"], 3145728),
    "render": ('"auto"', "always", ["--render", "off"], "off"),
    "browser": ('"file-chromium"', "", ["--browser", "flag-chromium"], "flag-chromium"),
    "render_timeout": ("5", "6.5", [], 6.5),
    "render_concurrency": ("3", "", [], 3),
    "workers": ("2", "3", ["--workers", "1"], 1),
    "lease": ("3", "", ["--lease", "10.5"], 10.5),
}
"""Sections 9 to 13: (file value, variable text or "" for none, flags, the value that wins)."""


class TestNewSettings:
    async def test_file_environment_and_flags(self, tmp_path: Path) -> None:
        """Each setting of sections 9 to 13 is read from a file, a variable and a flag, in that order."""
        (tmp_path / "new.toml").write_text("".join(f"{k} = {v[0]}\n" for k, v in NEW_VALUES.items()))
        env = {f"CRAWLER_{key.upper()}": value[1] for key, value in NEW_VALUES.items() if value[1]}
        flags = [flag for value in NEW_VALUES.values() for flag in value[2]]
        done = await cli("settings", "--config", "new.toml", *flags, cwd=tmp_path, env=env, loopback=False)
        assert done.code == 0, done.stderr
        shown = tomllib.loads(done.stdout)
        assert {key: shown[key] for key in NEW_VALUES} == {key: v[3] for key, v in NEW_VALUES.items()}

    async def test_defaults(self, tmp_path: Path) -> None:
        """With nothing set, the documented defaults; workers is this machine's cores, at most 8."""
        done = await cli("settings", cwd=tmp_path, loopback=False)
        assert done.code == 0, done.stderr
        shown = tomllib.loads(done.stdout)
        assert {key: shown[key] for key in NEW_VALUES if key != "workers"} == {
            "confirm_runs": 2,
            "unreachable_runs": 3,
            "notify": "",
            "notify_format": "json",
            "brand_terms": [],
            "archive": "",
            "archive_max_bytes": 1024**3,
            "render": "off",
            "browser": "",
            "render_timeout": 20.0,
            "render_concurrency": 2,
            "lease": 60.0,
        }
        assert 1 <= shown["workers"] <= min(8, len(os.sched_getaffinity(0)))

    async def test_stored_settings_hold_no_secret(self, tmp_path: Path) -> None:
        """The settings stored with a run redact header values, proxy credentials and the notify URL."""
        port = closed_port("127.0.0.1")
        (tmp_path / "claims.csv").write_text(f"source_url,target_url\nhttp://127.0.0.1:{port}/,{TARGET}\n")
        secret = "hunter2-s3cret"
        options = [
            *("--proxy", f"http://user:{secret}@127.0.0.1:{port}"),
            *("--header", f"Authorization: Bearer {secret}"),
            *("--notify", f"http://127.0.0.1:{port}/hooks/{secret}?token={secret}"),
        ]
        done = await cli("verify", "claims.csv", "--db", "r.sqlite", *options, cwd=tmp_path)
        assert done.code == 0, done.stderr
        ((stored,),) = rows(tmp_path / "r.sqlite", "SELECT settings FROM runs")
        assert secret not in stored
        record = json.loads(stored)
        assert record["proxy"] == f"http://[redacted]@127.0.0.1:{port}"
        assert record["headers"] == ["Authorization"]
        assert record["notify"] == f"http://127.0.0.1:{port}/[redacted]"


BAD = [
    ("dealy = 0.5\n", {}, [], "dealy"),
    ("", {"CRAWLER_DEALY": "0.5"}, [], "DEALY"),
    ("", {}, ["--dealy", "0.5"], "--dealy"),
    ('delay = "soon"\n', {}, [], "delay"),
    ("", {"CRAWLER_DELAY": "soon"}, [], "CRAWLER_DELAY"),
    ("", {}, ["--delay", "soon"], "--delay"),
    ("", {"CRAWLER_ALLOW_PRIVATE": "yes"}, [], "CRAWLER_ALLOW_PRIVATE"),
    ("[crawler\n", {}, [], "not valid TOML"),
    ("delay = nan\n", {}, [], "delay: expected a finite number"),
    ("", {"CRAWLER_TIMEOUT": "inf"}, [], "CRAWLER_TIMEOUT: timeout: expected a finite number"),
    ("", {}, ["--proxy", "socks5://u:p@127.0.0.1:1080"], "--proxy: proxy: expected an http://"),
    ('proxy = "notaurl"\n', {}, [], "proxy: expected an http://"),
    ("", {"CRAWLER_RESOLVE": "a.test=a.example"}, [], "CRAWLER_RESOLVE: resolve: a.test"),
    ('user_agent = "bot/1\\r\\nX: 1"\n', {}, [], "user_agent: the value contains a control character"),
    ("", {}, ["--header", "X-A: 1\nX-B: 2"], "headers: the value of X-A contains a control character"),
    ("", {"CRAWLER_HEADERS": "X A: 1"}, [], "headers: 'X A' is not a header name"),
    ("", {}, ["--max-header-bytes", "1"], "max_header_bytes must be at least 8192"),
    ("confirm_runs = 0\n", {}, [], "confirm_runs must be greater than 0"),
    ("", {"CRAWLER_NOTIFY": "ftp://hooks.test/x"}, [], "CRAWLER_NOTIFY: notify: expected an http://"),
    ("", {}, ["--notify-format", "xml"], "notify_format: expected one of json, slack"),
    ("", {}, ["--render", "sometimes"], "render: expected one of off, auto, always"),
    ("archive_max_bytes = 1\n", {}, [], "archive_max_bytes must be at least 1048576"),
    ("", {"CRAWLER_WORKERS": "0"}, [], "workers must be greater than 0"),
    ("lease = 2\n", {}, [], "lease must be at least 3"),
]
"""(config file text, environment, flags, what the error must name)."""


class TestErrors:
    async def test_bad_setting_exits_2_naming_it(self, site: Server, tmp_path: Path) -> None:
        """An unknown setting or a bad value, in the file, the environment or a flag, exits 2 naming it."""
        name = claims(tmp_path, site)
        runs = []
        for n, (file, env, flags, _) in enumerate(BAD):
            (tmp_path / f"{n}.toml").write_text(file)
            options = ["--db", f"{n}.sqlite", "--config", f"{n}.toml", *flags]
            runs.append(cli("verify", name, *options, cwd=tmp_path, env=env))
        for done, (_, _, _, named) in zip(await asyncio.gather(*runs), BAD, strict=True):
            assert done.code == 2, (named, done.stderr)
            assert named.lower() in done.stderr.lower(), (named, done.stderr)
        assert site.log.count() == 0  # stopped before any request
        assert not any(name.endswith(".sqlite") for name in os.listdir(tmp_path))

    async def test_config_file_not_utf8_exits_2(self, site: Server, tmp_path: Path) -> None:
        """A config file that is not UTF-8 exits 2 with one line naming it, no traceback."""
        (tmp_path / "latin1.toml").write_bytes(b'index_agent = "Googlebot"\n# caf\xe9\n')
        done = await cli("verify", claims(tmp_path, site), "--config", "latin1.toml", cwd=tmp_path)
        assert done.code == 2
        assert "latin1.toml: not UTF-8 text" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert site.log.count() == 0

    async def test_missing_config_file_exits_2(self, site: Server, tmp_path: Path) -> None:
        """A config file that can't be read exits 2 naming it."""
        done = await cli("verify", claims(tmp_path, site), "--config", "nope.toml", cwd=tmp_path)
        assert done.code == 2
        assert "nope.toml" in done.stderr
