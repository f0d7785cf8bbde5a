"""Every API error in one shape: ``{"code": "<stable code>", "message": "...", "errors": {"field": [{"message",
"code"}]}}``. Form errors (the pages' own forms check the API's input) become ``errors`` field by field, a form's
errors about no field one under ``non_field_errors``; a job the runner refuses is 409 (busy) or 503 (queue down).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import BadRequest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.runner import JobError, QueueUnavailable

NON_FIELD = "non_field_errors"


class FormInvalid(exceptions.APIException):
    """The operation's form refused the data."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"
    default_detail = gettext_lazy("Please correct the errors.")

    def __init__(self, form: forms.Form) -> None:
        super().__init__()
        self.errors = {(NON_FIELD if field == forms.forms.NON_FIELD_ERRORS else field): [
            {"message": " ".join(error.messages), "code": error.code or "invalid"} for error in errors]
            for field, errors in form.errors.as_data().items()}
        first = next(iter(self.errors.values()), [{"message": ""}])[0]["message"]
        self.message = (_("Please correct the errors: %(error)s") % {"error": first} if first
                        else str(self.default_detail))


def valid(form: forms.Form) -> forms.Form:
    """The form, when valid; FormInvalid otherwise."""
    if not form.is_valid():
        raise FormInvalid(form)
    return form


INT64 = range(-(2**63), 2**63)


def _in_range(value: Any) -> bool:
    """Whether a number (or a string of digits, as form fields send) fits the database's integers: a larger one
    as an id would crash the lookup instead of being "no such object"."""
    if isinstance(value, list):
        return all(_in_range(item) for item in value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return True
    text = str(value).strip()
    if not text.lstrip("-").isdigit() or not text.isascii():
        return True
    return int(text) in INT64


def body(request) -> dict:
    """The request's data as a form's data: a JSON object or form fields; 400 for anything else."""
    data = request.data
    if hasattr(data, "getlist"):  # a QueryDict: form-encoded or multipart
        values = [data.getlist(key) for key in data]
    elif isinstance(data, dict):
        data = {key: value for key, value in data.items() if value is not None}
        values = list(data.values())
    else:
        raise exceptions.ParseError(_("The body must be a JSON object (or form fields)."))
    if not all(_in_range(value) for value in values):
        raise exceptions.ParseError(_("A number in the body is out of range (64-bit integers)."))
    return data


def object_id(value: Any) -> int:
    """An id given in a body, as the database can hold it; 0 (no object) for anything else."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else 0


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 404 (handler404): in the API's shape under /api/, the page otherwise."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "message": _("Not found."), "errors": {}}, status=404)
    return _error_page(request, 404, _("Not found"), _page_reason(exception)
                       or _("There is nothing here, or nothing you may see."))


def forbidden(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 403 (handler403): the page, with the refusal's own words ("Only admins can do this.")."""
    return _error_page(request, 403, _("Not allowed"), _page_reason(exception)
                       or _("Your role or your teams do not let you do this."))


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 400 (handler400): a request a page refused (BadRequest) says why (the API's views answer their
    own, exception_handler below); any other (a SuspiciousOperation: a forged host name, say) gets Django's own bare
    page, which reads nothing of the request."""
    if not isinstance(exception, BadRequest):
        return defaults.bad_request(request, exception)
    return _error_page(request, 400, _("Bad request"), _page_reason(exception) or _("The request was not understood."))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a POST whose page is older than the person's last login or logout (the token changed
    then), or from an origin the app does not trust; says what to do instead of "CSRF verification failed"."""
    if "origin" in reason.lower() or "referer" in reason.lower():  # Django's reasons are English, never shown raw
        text = _("The request did not come from a page of this site as the app knows it, so nothing was done. "
                 "Behind a proxy or on another address, an admin sets CSRF_TRUSTED_ORIGINS (see the README).")
    else:
        text = _("This page's security token is out of date: you logged in or out since it was loaded (here or "
                 "in another tab), or your session ended. Nothing was done. Reload the page and try again.")
    return _error_page(request, 403, _("Not allowed"), text)  # the API's views check their own (DRF)


def _error_page(request: HttpRequest, status_code: int, title: str, reason: str) -> HttpResponse:
    return render(request, "error_page.html", {"title": title, "reason": reason}, status=status_code)


def _page_reason(exception: Exception | None) -> str:
    """What an error page says of the cause: the app's own words (a pool removed meanwhile, say), not Django's
    (a URL that matches no page has no message; get_object_or_404's names a model)."""
    said = exception.args[0] if exception is not None and exception.args else ""
    return str(said) if isinstance(said, str) and not said.endswith(" matches the given query.") else ""


def _detail_errors(detail: Any) -> dict:
    """DRF's ValidationError detail as our errors: field -> [{"message", "code"}]."""
    if isinstance(detail, dict):
        return {field: [{"message": str(item), "code": getattr(item, "code", "invalid")}
                        for item in (value if isinstance(value, list) else [value])]
                for field, value in detail.items()}
    items = detail if isinstance(detail, list) else [detail]
    return {NON_FIELD: [{"message": str(item), "code": getattr(item, "code", "invalid")} for item in items]}


def _job_refused(exc: JobError) -> Response:
    if isinstance(exc, QueueUnavailable):
        return Response({"code": "queue_unavailable", "message": str(exc), "errors": {}},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"code": "job_conflict", "message": str(exc), "errors": {}}, status=status.HTTP_409_CONFLICT)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, JobError):
        return _job_refused(exc)
    if isinstance(exc, BadRequest):
        exc = exceptions.ParseError(str(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or _("Not found."))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500
    if isinstance(exc, FormInvalid):
        response.data = {"code": "invalid", "message": exc.message, "errors": exc.errors}
    elif isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "message": _("Please correct the errors."),
                         "errors": _detail_errors(exc.detail)}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = {"code": codes if isinstance(codes, str) else "error",
                         "message": str(getattr(exc, "detail", exc)), "errors": {}}
    return response
