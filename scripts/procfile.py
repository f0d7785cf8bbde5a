"""The Procfile's commands, for the tests and benchmarks that start the app's processes themselves."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def procfile_web_args(host: str, port: int) -> list[str]:
    """The Procfile's `web:` command with host and port filled in, run by this interpreter.

    The tests start the web server from the Procfile itself, so they exercise the server options
    that `make run` uses and cannot drift from them.
    """
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    values = {"VIRTSTORAGE_HOST": host, "VIRTSTORAGE_PORT": str(port)}

    def substitute(match: re.Match) -> str:
        if match.group(1) not in values:
            raise AssertionError(f"Procfile web line uses ${{{match.group(1)}}}, which the tests do not set")
        return values[match.group(1)]

    args = shlex.split(re.sub(r"\$\{(\w+):-[^}]*\}", substitute, line.removeprefix("web:")))
    program = Path(args[0]).name  # .venv/bin/granian: the same package, run by the test's interpreter
    return [sys.executable, "-m", program, *args[1:]]
