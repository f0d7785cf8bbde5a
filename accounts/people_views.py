"""The Accounts page: an admin lists the accounts, makes one, gives one a new password, deactivates or reactivates
one. A new password is shown once, on the page that answers the POST (never in a message or a log)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .models import Membership
from .people import AccountForm, generated_password, set_up
from .roles import admin_required, site_role
from .signals import account_event

ACCOUNTS_PER_PAGE = 50


def _page(request: HttpRequest, form: AccountForm, handed: tuple | None = None, status: int = 200) -> HttpResponse:
    """The accounts in name order, those whose name or one of whose teams' names holds ?q=, a page at a time."""
    search = request.GET.get("q", "").strip()
    accounts = get_user_model().objects.order_by("username")
    if search:
        accounts = accounts.filter(Q(username__icontains=search) | Q(memberships__team__name__icontains=search))
    page = Paginator(accounts.distinct().prefetch_related(
        "groups", Prefetch("memberships", queryset=Membership.objects.select_related("team"))),
        ACCOUNTS_PER_PAGE).get_page(request.GET.get("page"))
    for account in page:
        account.site_role = site_role(account)
    return render(request, "accounts/people.html",
                  {"page": page, "search": search, "form": form, "handed": handed}, status=status)


def _tell(request: HttpRequest, account, action: str, **detail) -> None:
    account_event.send(sender=type(account), request=request, actor=request.user, account=account, action=action,
                       detail=detail)


@admin_required
def people(request: HttpRequest) -> HttpResponse:
    form = AccountForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return _page(request, form, status=400 if form.errors else 200)
    data, password = form.cleaned_data, generated_password()
    with transaction.atomic():
        account = get_user_model().objects.create(username=data["username"])
        set_up(account, password=password, site_role=data["site_role"], team=data["team"],
               team_role=data["team_role"])
    _tell(request, account, "account.create", role=data["site_role"],
          team=data["team"].name if data["team"] else None, team_role=data["team_role"] if data["team"] else None)
    return _page(request, AccountForm(), handed=(account, password))


@require_POST
@admin_required
def new_password(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(get_user_model(), pk=pk)
    password = generated_password()
    account.set_password(password)  # their sessions end: each carries a hash of the password it logged in with
    account.save(update_fields=["password"])
    _tell(request, account, "account.password_reset")
    return _page(request, AccountForm(), handed=(account, password))


@require_POST
@admin_required
def set_active(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(get_user_model(), pk=pk)
    active = request.POST.get("active") == "1"
    if account == request.user and not active:
        messages.error(request, _("You cannot deactivate your own account."))
        return redirect("people")
    account.is_active = active
    account.save(update_fields=["is_active"])
    _tell(request, account, "account.reactivate" if active else "account.deactivate")
    messages.success(request, (_("%(name)s can log in again.") if active else
                               _("%(name)s can no longer log in; their teams, jobs and requests stay."))
                     % {"name": account.get_username()})
    return redirect("people")
