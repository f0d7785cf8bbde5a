"""Run every benchmark: each bench/*_bench.py module's main(), in name order (`make bench`)."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def main() -> int:
    failed = []
    for path in sorted(BENCH.glob("*_bench.py")):
        name = f"bench.{path.stem}"
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(name).main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
