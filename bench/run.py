"""Run every benchmark: each bench/*_bench.py in name order, each in its own process (`make bench`).

Separate processes because each benchmark sets Django up on a database of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for path in sorted(BENCH.glob("*_bench.py")):
        name = f"bench.{path.stem}"
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", name], cwd=BENCH.parent).returncode != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
