"""Workers sharing a PostgreSQL run: pages a second with 1, 2 and 4 worker processes, and the
database round trips each page costs.

A throwaway cluster (tests/postgres_cluster.py) and the memory benchmark's nginx (one process
answering every path of every loopback address with a small page, `bench/memory.py`; `--hosts`
hosts, `--pages` pages each) are started; for each worker count a new database gets one claim a
page, a run is begun, and that many `crawler.engine.leases.work` processes finish it. Each
worker counts the statements it sends (every asyncpg call is one round trip: no statement is
pipelined) and prints them.

    .venv/bin/python bench/postgres.py
    .venv/bin/python bench/postgres.py --hosts 200 --pages 10 --delay 0 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import PORT, host, start_nginx
from postgres_cluster import running_cluster

from crawler.config import Settings
from crawler.models import Claim
from crawler.store.postgres import PostgresStore

TARGET = "https://target.example/t3"  # one of the ten links of the memory benchmark's page
WORKER = """
import asyncio, collections, json, sys
from crawler import logs
from crawler.config import Settings
from crawler.engine.leases import work
from crawler.store.postgres import PostgresStore

class Counting:
    def __init__(self, pool, counts):
        self._pool, self._counts = pool, counts
    def __getattr__(self, name):
        found = getattr(self._pool, name)
        if name in ("fetch", "fetchrow", "fetchval", "execute"):
            async def counted(query, *args):
                self._counts[query.split()[0] + " " + " ".join(query.split()[1:4])] += 1
                return await found(query, *args)
            return counted
        return found

async def main() -> None:
    counts = collections.Counter()
    async with PostgresStore(sys.argv[1]) as store:
        store._pool = Counting(store._pool, counts)
        await work(store, Settings(**json.loads(sys.argv[2])), wait=False)
        store._pool = store._pool._pool
    print(json.dumps(counts))

logs.configure(format="json", quiet=True)
asyncio.run(main())
"""


async def one(url: str, claims: list[Claim], settings: Settings, workers: int) -> tuple[float, Counter[str]]:
    options = {
        "allow_private": True,
        "delay": settings.delay,
        "lease": settings.lease,
        "concurrency": settings.concurrency,
        "workers": 1,
    }
    async with PostgresStore(url) as store:
        run = await store.begin_run(settings.record())
        await store.add_claims(run, claims)
        started = time.monotonic()
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", WORKER, url, json.dumps(options), stdout=subprocess.PIPE
            )
            for _ in range(workers)
        ]
        outputs = [await process.communicate() for process in processes]
        took = time.monotonic() - started
        info = await store.finish_run(run)
    assert info.decided == len(claims), info
    counts: Counter[str] = Counter()
    for out, _ in outputs:
        counts.update(json.loads(out))
    return took, counts


async def main(args: argparse.Namespace) -> None:
    settings = Settings(allow_private=True, delay=args.delay, lease=10.0, concurrency=args.concurrency)
    with running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-postgres-") as tmp:
        nginx = start_nginx(Path(tmp))
        try:
            claims = [
                Claim(f"http://{host(site)}:{PORT}/p{n}", TARGET)
                for n in range(args.pages)
                for site in range(args.hosts)
            ]
            for number, workers in enumerate(args.workers):
                url = cluster.create_database(f"bench_{number}")
                took, counts = await one(url, claims, settings, workers)
                pages = len(claims)
                total = sum(counts.values())
                print(
                    f"{workers} worker(s): {pages} pages in {took:.2f} s = {pages / took:.0f} pages/s;"
                    f" {total} round trips = {total / pages:.2f} a page"
                )
                for statement, n in counts.most_common():
                    print(f"    {n / pages:6.2f}/page  {statement}")
        finally:
            nginx.terminate()
            nginx.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    asyncio.run(main(parser.parse_args()))
