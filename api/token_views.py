"""The profile page of personal API tokens (/accounts/tokens/): make one (its secret is shown once, on the
answer to the POST, and never stored), see each one's last use, revoke one. Each change is in the audit log.
The tokens live in accounts (models.ApiToken, tokens.py); this page stands here, above the audit log."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import tokens
from accounts.models import ApiToken
from audit.log import record

from .token_forms import TokenForm


def _audit(request: HttpRequest, action: str, token: ApiToken, **detail) -> None:
    record(action, request=request, target_type="token", target_id=str(token.pk),
           target=f"API token {token.name} ({token.prefix}) of {token.user.get_username()}", detail=detail)


def _page(request: HttpRequest, form: TokenForm, secret: str = "", status: int = 200) -> HttpResponse:
    return render(request, "accounts/tokens.html", {
        "form": form, "secret": secret, "now": timezone.now(),
        "tokens": ApiToken.objects.filter(user=request.user)}, status=status)


def token_list(request: HttpRequest) -> HttpResponse:
    """Your tokens; POST makes one and shows its secret this once."""
    if request.method != "POST":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    token, secret = tokens.issue(request.user, form.cleaned_data["name"], form.expires_at())
    _audit(request, "token.create", token, expires_at=token.expires_at.isoformat() if token.expires_at else None)
    return _page(request, TokenForm(), secret=secret)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.filter(user=request.user), pk=pk)
    if tokens.revoke(token):
        _audit(request, "token.revoke", token)
        messages.success(request, _("Revoked API token %(name)s: it no longer works.") % {"name": token.name})
    return redirect("tokens:list")
