"""Pages: numbered, 100 rows by default, ?page_size= up to 500; the audit log by cursor (no COUNT over it)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination, PageNumberPagination

MAX_PAGE_SIZE = 500


class StrictPageSize:
    """?page_size= must be a whole number from 1 to MAX_PAGE_SIZE (anything else is a 400, not ignored)."""

    def get_page_size(self, request) -> int:
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
            raise exceptions.ValidationError({self.page_size_query_param: [
                _("A page holds 1 to %(max)s rows.") % {"max": MAX_PAGE_SIZE}]})
        return int(text)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=MAX_PAGE_SIZE)
            elif parameter["name"] == getattr(self, "page_query_param", None):
                parameter["schema"].update(minimum=1)
        return parameters


class Pages(StrictPageSize, PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class Newest(StrictPageSize, CursorPagination):
    """Newest first, by cursor: pages of a large table cost the same wherever they are."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = ("-at", "-id")
