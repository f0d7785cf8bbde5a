"""Sign-in for every page but the few marked login_not_required (Django's LoginRequiredMiddleware)."""

from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


class LoginRequired(LoginRequiredMiddleware):
    """Django's, except for an htmx request from a browser that is no longer signed in (its session ended while a
    page polled, or it logged out in another tab): the whole page goes to the login page, and back to that page
    after. A plain redirect would be followed by htmx and the login form swapped into a corner of the page."""

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if not request.htmx:
            return super().handle_no_permission(request, view_func)
        page = request.htmx.current_url_abs_path or resolve_url("dashboard")
        login = redirect_to_login(page, resolve_url(self.get_login_url(view_func)),
                                  self.get_redirect_field_name(view_func))
        return HttpResponseClientRedirect(login.url)
