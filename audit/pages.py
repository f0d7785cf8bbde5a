"""Keyset pages of the audit log: newest first, no COUNT(*).

Django's Paginator counts the matching rows on every page: over a million records that is a scan per
page view. Here a page is "the N records before (or after) this one" in (at, id) order: one query of
N + 1 rows, the extra row telling whether there is more. The cursor is the edge record's (at, id),
written into the link, so turning a page costs no lookup either. Pages show "Newer" and "Older", not
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet

PAGE_SIZES = (50, 100, 200)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor(record) -> str:
    """A record's place in the order, as URL text: "<microseconds since 1970>_<id>"."""
    return f"{(record.at - _EPOCH) // _MICROSECOND}_{record.pk}"


def parse_cursor(text: str | None) -> tuple[datetime, int] | None:
    try:
        micros, pk = (int(part) for part in (text or "").split("_"))
        return _EPOCH + timedelta(microseconds=micros), pk
    except (ValueError, OverflowError):
        return None


def page_size(text: str | None) -> int:
    try:
        size = int(text or "")
    except ValueError:
        return PAGE_SIZES[0]
    return size if size in PAGE_SIZES else PAGE_SIZES[0]


@dataclass
class Page:
    records: list = field(default_factory=list)
    size: int = PAGE_SIZES[0]
    newer: str | None = None  # cursor for ?after=: the page of records newer than this one
    older: str | None = None  # cursor for ?before=

    @property
    def has_other_pages(self) -> bool:
        return bool(self.newer or self.older)


def keyset_page(queryset: QuerySet, *, size: int, before: str | None = None, after: str | None = None) -> Page:
    """The page of `queryset` (newest first) before or after a cursor; the newest page without one."""
    if (edge := parse_cursor(after)) is not None:
        at, pk = edge
        rows = list(queryset.filter(Q(at__gte=at) & (Q(at__gt=at) | Q(pk__gt=pk))).order_by("at", "id")[:size + 1])
        if len(rows) > size:  # more newer records above this page
            records = rows[:size][::-1]
            return Page(records, size, newer=cursor(records[0]), older=cursor(records[-1]))
        # Near the top: the newest page, full.
    elif (edge := parse_cursor(before)) is not None:
        at, pk = edge
        rows = list(queryset.filter(Q(at__lte=at) & (Q(at__lt=at) | Q(pk__lt=pk))).order_by("-at", "-id")[:size + 1])
        records = rows[:size]
        return Page(records, size, newer=cursor(records[0]) if records else None,
                    older=cursor(records[-1]) if len(rows) > size else None)
    rows = list(queryset.order_by("-at", "-id")[:size + 1])
    records = rows[:size]
    return Page(records, size, older=cursor(records[-1]) if len(rows) > size else None)
