"""Run every benchmark: each bench/*_bench.py in name order, each in its own process (`make bench`).

Separate processes because each benchmark sets Django up on a database of its own. Those in BOTH_DATABASES run
twice: on SQLite, then on the PostgreSQL server of BENCH_POSTGRES_URL (the Makefile passes the test server's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BOTH_DATABASES = {"bench.sync_bench"}


def main() -> int:
    failed = []
    for path in sorted(BENCH.glob("*_bench.py")):
        name = f"bench.{path.stem}"
        sqlite = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        runs = [("", sqlite)]
        if name in BOTH_DATABASES and os.environ.get("BENCH_POSTGRES_URL"):
            runs.append((" on PostgreSQL", {**sqlite, "DATABASE_URL": os.environ["BENCH_POSTGRES_URL"]}))
        for label, env in runs:
            print(f"== {name}{label}", flush=True)
            if subprocess.run([sys.executable, "-m", name], cwd=BENCH.parent, env=env).returncode != 0:
                failed.append(name + label)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
