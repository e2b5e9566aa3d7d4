"""Peak memory of `crawler verify` at 10,000 and at 1,000,000 streamed claims, side by side.

One nginx (installed with apt when missing) answers every path of every loopback address with
a small page carrying the claimed link, so hosts cost nothing to create: host i is 127.1.x.y.
Claims are written as a CSV stream (ten targets per page) and verified with the project's CLI.
The memory of a run is that of its process tree (with `workers` above 1, the page readers are
processes of their own): the sum of the RSS of the command and its descendants, read from /proc
every 50 ms, and its peak. The figures that matter are that peak and the ratio of the two peaks.

    .venv/bin/python bench/memory.py                     # 10,000 vs 1,000,000 claims, 10,000 hosts
    .venv/bin/python bench/memory.py --claims 10000 200000 --hosts 2000
    CRAWLER_WORKERS=1 .venv/bin/python bench/memory.py   # one process
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 18190
PAGE = (
    "<!doctype html><html><head><title>bench page</title></head><body><main>"
    "<p>Some text before the links.</p>"
    + "".join(f'<p><a href="https://target.example/t{i}">anchor {i}</a></p>' for i in range(10))
    + '<footer><a href="/about">about</a></footer></main></body></html>'
)
# The page goes into an nginx string in single quotes: a single quote in it would end the string.
assert "'" not in PAGE
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
    server {{
        listen {port};
        default_type text/html;
        location = /robots.txt {{ return 200 "User-agent: *\\nAllow: /\\n"; }}
        location / {{ return 200 '{page}'; }}
    }}
}}
"""


def host(i: int) -> str:
    return f"127.1.{i // 250}.{1 + i % 250}"


def write_claims(path: Path, claims: int, hosts: int) -> None:
    """Ten claims a page, pages spread round-robin over the hosts."""
    with path.open("w", encoding="utf-8") as out:
        out.write("source_url,target_url,vendor\n")
        for n in range(claims):
            page = n // 10
            source = f"http://{host(page % hosts)}:{PORT}/p{page // hosts}"
            out.write(f"{source},https://target.example/t{n % 10},v{page % 7}\n")


def start_nginx(workdir: Path) -> subprocess.Popen[bytes]:
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        subprocess.run("apt-get update -qq && apt-get install -y -qq nginx-light", shell=True, check=True)
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=PORT, page=PAGE))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"])
    for _ in range(50):  # a configuration error makes nginx exit: say so rather than measure nothing
        try:
            socket.create_connection((host(0), PORT), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    sys.exit(f"nginx did not start (exit status {proc.poll()}); see {workdir}/error.log")


def tree_rss_kib(root: int) -> int:
    """The summed RSS (KiB) of process `root` and its descendants now; 0 once they are gone."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:  # ended while read
            continue
        pid = int(entry.name)
        parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
        rss[pid] = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    tree, grown = {root}, True
    while grown:
        added = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= added
        grown = bool(added)
    return sum(rss.get(pid, 0) for pid in tree)


def measure(crawler: str, workdir: Path, claims: int, hosts: int) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KiB, summary line) of one verify run."""
    csv_path = workdir / f"claims-{claims}.csv"
    write_claims(csv_path, claims, hosts)
    db = workdir / f"bench-{claims}.sqlite"
    env = dict(os.environ, CRAWLER_ALLOW_PRIVATE="true", CRAWLER_DELAY="0", CRAWLER_PER_HOST="1")
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [crawler, "verify", str(csv_path), "--db", str(db), "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        rss_kib = 0
        while proc.poll() is None:
            rss_kib = max(rss_kib, tree_rss_kib(proc.pid))
            time.sleep(0.05)
        wall = time.monotonic() - started
        if proc.returncode not in (0, 1):
            errors.seek(0)
            sys.exit(f"crawler exited {proc.returncode}: {errors.read()[-2000:].decode(errors='replace')}")
    report = subprocess.run(
        [crawler, "report", "--db", str(db), "--format", "json"], capture_output=True, text=True, check=False
    )
    return wall, rss_kib, report.stdout.strip().replace("\n", " ")[:300]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--claims", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--crawler", default=".venv/bin/crawler")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        nginx = start_nginx(workdir)
        try:
            rows = [(n, *measure(args.crawler, workdir, n, args.hosts)) for n in args.claims]
        finally:
            nginx.terminate()
            nginx.wait()
    print(f"workers: {os.environ.get('CRAWLER_WORKERS', 'default')}")
    print(f"{'claims':>10} {'wall s':>8} {'claims/s':>9} {'peak RSS MB':>12}  (process tree)")
    for claims, wall, rss, _ in rows:
        print(f"{claims:>10} {wall:8.1f} {claims / wall:9.0f} {rss / 1024:12.1f}")
    print(f"peak RSS ratio {rows[-1][0]:,} / {rows[0][0]:,} claims: {rows[-1][2] / rows[0][2]:.2f}")
    for claims, _, _, summary in rows:
        print(f"report at {claims:,}: {summary}")


if __name__ == "__main__":
    main()
