"""The CSV export: every filtered record, streamed a few thousand rows at a time, never held whole.

Rows come from ``.iterator(chunk_size=CHUNK_ROWS)`` and leave as one piece of text per CHUNK_ROWS rows.
Under ASGI (granian) Django reads a synchronous iterator to its end before sending anything, so there the
same generator is driven from an asynchronous one, a chunk per hop to the request's thread (where the
database connection and its cursor live). A cell a spreadsheet would take for a formula (= + - @ at its
start) gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

CHUNK_ROWS = 2000
COLUMNS = ["id", "at", "user", "team", "action", "target_type", "target_id", "target", "outcome", "client_ip",
           "detail"]
FIELDS = ["id", "at", "username", "team", "action", "target_type", "target_id", "target", "outcome", "client_ip",
          "detail"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str | int:
    if value is None:
        return ""
    if isinstance(value, int):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_chunks(queryset: QuerySet) -> Iterator[str]:
    """The CSV text of the records, header first, CHUNK_ROWS rows a piece."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = queryset.order_by("-at", "-id").values_list(*FIELDS).iterator(chunk_size=CHUNK_ROWS)
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(value) for value in row])
        if n % CHUNK_ROWS == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


async def _from_thread(chunks: Iterator[str]) -> AsyncIterator[str]:
    """The chunks of a synchronous generator, each produced in the request's thread."""
    next_chunk = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await next_chunk(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


def csv_response(request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
    chunks = csv_chunks(queryset)
    content = _from_thread(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    return response
