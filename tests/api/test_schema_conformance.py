"""The API against its own OpenAPI schema, checked by a tool no one here wrote: schemathesis, run as its users
run it (its CLI) against the schema the real ASGI server serves, with an admin's token, bounded in examples and
time. Every check it has (no 5xx, status codes, content types, headers and bodies conforming to the schema,
refusing data the schema refuses, authentication honoured...) in the examples, coverage, fuzzing and stateful
phases; the run must pass.

One check is left out: positive_data_acceptance expects every request the schema allows to succeed, but the
pages' forms check meaning that no schema states (a size that parses, a name typed to confirm, a pool that is
running, a team's quota), so a schema-valid request may rightly be refused with a 400. Its converse,
negative_data_rejection (what the schema refuses must be refused), stays on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_the_schema_is_served_and_documented(asgi_server) -> None:
    schema = httpx.get(f"{asgi_server.url}/api/schema/", headers={"Accept": "application/json"}, timeout=30)
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.") and "/api/volumes/{id}/resize/" in document["paths"]
    assert document["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A personal API token (make one at /accounts/tokens/)."}
    docs = httpx.get(f"{asgi_server.url}/api/docs/", timeout=30)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # No CDN: every asset is ours, nothing loads from another address (a random CSRF token can hold "cdn").
    assets = re.findall(r'(?:src|href)="([^"]*)"', docs.text)
    assert assets and all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets), assets
    assert not re.search(r"https?://", docs.text)
    asset = httpx.get(f"{asgi_server.url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
                      timeout=30)
    assert asset.status_code == 200


def test_schemathesis_finds_nothing(asgi_server, synced, celery_worker, admin_user, tmp_path) -> None:
    report = tmp_path / "report.json"
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{asgi_server.url}/api/schema/",
         "--header", f"Authorization: Bearer {token_for(admin_user)}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "8", "--max-time", "150",
         "--seed", "20240601", "--workers", "1",  # one: hypothesis' source cache races across threads
         "--request-timeout", "30", "--no-color", "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=420, cwd=tmp_path)
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)  # the whole story, for a failure
    summary = "\n".join(run.stdout.splitlines()[-60:])
    assert run.returncode == 0, summary
    assert "No issues found" in run.stdout or "passed" in run.stdout, summary
    assert report.exists() and json.loads(report.read_text() or "{}") is not None
