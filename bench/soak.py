"""Soak: 100,000 claims over 1,000 loopback hosts through `crawler verify`; descriptors and memory sampled.

One nginx (installed with apt when missing) listens on one port of each host's own loopback
address (127.20.x.y: a listen line each, nothing bound beyond loopback) and answers from its
configuration alone: robots.txt allows all; pages link to the claimed target (followed) and to a
second target (nofollow); one page in 25 is gone (404) and one moved (301 to a page).

Claims are four a page (verified, nofollow, missing, and an anchor mismatch that is still
verified), pages round-robin over the hosts. `crawler verify` runs with the default settings
but `allow_private` (the hosts are loopback), as a subprocess; this script samples its
/proc/<pid>/fd and /proc/<pid>/status every 0.1 s.

The run passes when every claim has exactly one result and the open descriptors stayed within
`concurrency` + `max_idle_connections` + FD_ALLOWANCE: at most `concurrency` connections in use,
`max_idle_connections` idle ones kept for reuse, and the database, its journal, standard streams
and the event loop.

    .venv/bin/python bench/soak.py                          # 100,000 claims, 1,000 hosts, defaults
    .venv/bin/python bench/soak.py --claims 20000 --hosts 200 --delay 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from crawler.config import Settings

PORT = 18291
TARGET = "https://target.example/product"
OTHER = "https://target.example/other"
CLAIMS_PER_PAGE = 4
# Descriptors a run holds besides its connections: stdin/out/err, the database with its WAL and
# shared-memory files, the event loop's selector and wake-up pipe, the resolver's threads, logs.
FD_ALLOWANCE = 32
PAGE = (
    "<!doctype html><html><head><title>soak page</title></head><body><main>"
    "<p>Some text before the links.</p>"
    f'<p><a href="{TARGET}">the product</a></p>'
    f'<p><a rel="nofollow" href="{OTHER}">other</a></p>'
    + "<p>filler paragraph of text</p>" * 40
    + '<footer><a href="/about">about</a></footer></main></body></html>'
)
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 16384;
http {{
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 30s;
    server {{
        {listens}
        default_type text/html;
        location = /robots.txt {{ return 200 "User-agent: *\\nAllow: /\\n"; }}
        location /gone/ {{ return 404 "<html><body>gone</body></html>"; }}
        location /moved/ {{ return 301 /p/moved; }}
        location / {{ return 200 '{page}'; }}
    }}
}}
"""


def host(i: int) -> str:
    return f"127.20.{i // 250}.{1 + i % 250}"


def page_path(page: int, hosts: int) -> str:
    kind = (page // hosts + page % hosts) % 25  # spread over hosts and over each host's pages
    prefix = "gone" if kind == 23 else "moved" if kind == 24 else "p"
    return f"/{prefix}/{page // hosts}"


def write_claims(path: Path, claims: int, hosts: int) -> None:
    """Four claims a page; consecutive pages on different hosts."""
    kinds = [
        (TARGET, "the product"),  # verified
        (OTHER, ""),  # nofollow
        ("https://target.example/absent", ""),  # missing
        (TARGET, "wrong anchor"),  # verified, flagged anchor_mismatch
    ]
    with path.open("w", encoding="utf-8") as out:
        out.write("id,source_url,target_url,expected_anchor,vendor\n")
        for n in range(claims):
            page, kind = divmod(n, CLAIMS_PER_PAGE)
            target, anchor = kinds[kind]
            source = f"http://{host(page % hosts)}:{PORT}{page_path(page, hosts)}"
            out.write(f"c{n},{source},{target},{anchor},v{page % 7}\n")


def start_nginx(workdir: Path, hosts: int) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        subprocess.run("apt-get update -qq && apt-get install -y -qq nginx-light", shell=True, check=True)
    listens = "\n        ".join(f"listen {host(i)}:{PORT};" for i in range(hosts))
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, listens=listens, page=PAGE))
    proc = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"])
    time.sleep(1.0)
    if proc.poll() is not None:
        sys.exit("nginx did not start (its error is above)")
    return proc


@dataclass(slots=True)
class Samples:
    """What /proc said about the crawler process over the run."""

    fds: list[int] = field(default_factory=list)
    sockets: list[int] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    hwm_kib: int = 0

    def take(self, pid: int) -> None:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
            links = [os.readlink(f"/proc/{pid}/fd/{name}") for name in names]
            status = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return  # it just ended
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" not in fields:
            return  # it has exited and not been reaped yet: no memory left to read
        self.fds.append(len(names))
        self.sockets.append(sum(link.startswith("socket:") for link in links))
        self.rss_kib.append(int(fields["VmRSS"].split()[0]))
        self.hwm_kib = max(self.hwm_kib, int(fields["VmHWM"].split()[0]))


def run_crawler(workdir: Path, csv_path: Path, args: argparse.Namespace) -> tuple[float, int, Samples]:
    db = workdir / "soak.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env |= {
        "CRAWLER_ALLOW_PRIVATE": "true",
        "CRAWLER_DELAY": str(args.delay),
        "CRAWLER_CONCURRENCY": str(args.concurrency),
        "CRAWLER_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "crawler", "verify", str(csv_path), "--db", str(db), "--quiet"]
    samples = Samples()
    started = time.monotonic()
    with (workdir / "crawler.log").open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        while proc.poll() is None:
            samples.take(proc.pid)
            time.sleep(0.1)
    return time.monotonic() - started, proc.returncode, samples


def check(db: Path, claims: int) -> tuple[dict[str, int], int, int]:
    """(results by status, claims without exactly one result, total results) of the run."""
    with sqlite3.connect(db) as connection:
        by_status = dict(
            connection.execute("SELECT status, count(*) FROM results GROUP BY status").fetchall()
        )
        total = connection.execute("SELECT count(*) FROM results").fetchone()[0]
        one_each = connection.execute(
            "SELECT count(*) FROM (SELECT claim_id FROM results GROUP BY claim_id HAVING count(*) = 1)"
        ).fetchone()[0]
    return by_status, claims - one_each, total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between requests to one host")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "claims.csv"
        write_claims(csv_path, args.claims, args.hosts)
        nginx = start_nginx(workdir, args.hosts)
        try:
            wall, code, samples = run_crawler(workdir, csv_path, args)
        finally:
            nginx.terminate()
            nginx.wait()
        by_status, wrong, total = check(workdir / "soak.sqlite", args.claims)
        tail = (workdir / "crawler.log").read_text(errors="replace").splitlines()[-3:]
    pages = -(-args.claims // CLAIMS_PER_PAGE)
    bound = args.concurrency + Settings().max_idle_connections + FD_ALLOWANCE
    peak_fds = max(samples.fds, default=0)
    print(f"claims {args.claims:,} over {args.hosts:,} hosts ({pages:,} pages), exit code {code}")
    requests = pages + pages // 25 + args.hosts  # pages, the moved ones' targets, robots.txt
    print(f"wall {wall:.1f} s: {args.claims / wall:,.0f} claims/s, {requests / wall:,.0f} requests/s")
    print(f"results {total:,}; claims without exactly one result: {wrong}")
    print(f"statuses {json.dumps(by_status, sort_keys=True)}")
    idle = Settings().max_idle_connections
    print(
        f"open descriptors: peak {peak_fds} (sockets {max(samples.sockets, default=0)}), "
        f"bound concurrency {args.concurrency} + idle {idle} + {FD_ALLOWANCE} = {bound}"
    )
    print(
        f"memory: peak RSS {samples.hwm_kib / 1024:.1f} MiB, "
        f"median RSS {sorted(samples.rss_kib)[len(samples.rss_kib) // 2] / 1024:.1f} MiB "
        f"over {len(samples.fds)} samples"
    )
    if code != 0 or wrong or peak_fds > bound:
        print("\n".join(tail))
        sys.exit(1)


if __name__ == "__main__":
    main()
