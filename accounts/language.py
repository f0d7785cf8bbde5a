"""The page language: the browser's Accept-Language (Django's LocaleMiddleware) until a person picks one in
the page header; that choice is kept on their Preferences and, for the session, in the session, so a request
costs no query for it. Jobs run in the language of the page that started them (jobs.runner)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .models import Preferences

SESSION_KEY = "language"


def supported(code: str) -> bool:
    return code in dict(settings.LANGUAGES)


class UserLanguageMiddleware:
    """After authentication: a signed-in person's chosen language replaces the browser's."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = request.session.get(SESSION_KEY) if request.user.is_authenticated else None
        if chosen and supported(chosen):
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        return self.get_response(request)


def remember_on_login(sender, request: HttpRequest, user, **_) -> None:
    """user_logged_in: bring the person's chosen language into the new session."""
    language = Preferences.objects.filter(user=user).values_list("language", flat=True).first()
    if language and supported(language):
        request.session[SESSION_KEY] = language


@login_not_required
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The header's language switch: "" returns to the browser's language. Kept per person when signed in,
    in the language cookie otherwise (the login page)."""
    language = request.POST.get("language", "")
    if language and not supported(language):
        language = ""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("dashboard")
    response = HttpResponseRedirect(target)
    if request.user.is_authenticated:
        Preferences.objects.update_or_create(user=request.user, defaults={"language": language})
        request.session[SESSION_KEY] = language
    if language:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600,
                            samesite="Lax", secure=request.is_secure(), httponly=True)
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response

