"""Teams: the admins' pages (the list, create and edit, a team's members, pool grants and quota usage) and
each member's own teams. They live here, not in accounts, because a team's page shows pools and their
usage and every change is written to the audit log, and both stand above accounts."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import teams_of
from accounts.models import Membership, Team
from accounts.roles import admin_required, member_required
from accounts.team_forms import MemberForm, TeamForm, size_text
from accounts.teams import add_member, remove_member
from audit.log import changes, record

from .models import StoragePool
from .quotas import grant_pool, grants_of, revoke_pool
from .team_forms import GrantForm


@admin_required
def team_list(request: HttpRequest) -> HttpResponse:
    teams = Team.objects.annotate(n_members=Count("memberships", distinct=True), n_pools=Count("grants", distinct=True))
    return render(request, "pools/team_list.html", {"teams": teams})


@admin_required
def team_create(request: HttpRequest) -> HttpResponse:
    return _team_form(request, Team())


@admin_required
def team_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _team_form(request, get_object_or_404(Team, pk=pk))


def _team_form(request: HttpRequest, team: Team) -> HttpResponse:
    form = TeamForm(request.POST or None, instance=team)
    if request.method == "POST" and form.is_valid():
        created = team.pk is None
        detail = changes(form)
        team = form.save()
        record("team.create" if created else "team.edit", request=request, target=team, team=team.name, detail=detail)
        message = _("Created team %(team)s.") if created else _("Saved team %(team)s.")
        messages.success(request, message % {"team": team.name})
        return redirect("teams:detail", team.pk)
    return render(request, "pools/team_form.html", {"form": form, "team": team if team.pk else None},
                  status=400 if form.errors else 200)


@admin_required
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, get_object_or_404(Team, pk=pk))


def _detail_page(request: HttpRequest, team: Team, *, member_form: MemberForm | None = None,
                 grant_form: GrantForm | None = None) -> HttpResponse:
    """The team's page; a form given back with its errors is shown in place of the empty one (status 400)."""
    rows = [{"grant": grant, "max_size": size_text(grant.max_virtual_bytes)} for grant in grants_of(team)]
    return render(request, "pools/team_detail.html", {
        "team": team, "memberships": team.memberships.select_related("user").order_by("user__username"),
        "roles": Membership.Role.choices, "grants": rows,
        "member_form": member_form or MemberForm(), "grant_form": grant_form or GrantForm(team=team, only_new=True),
    }, status=400 if member_form or grant_form else 200)


@require_POST
@admin_required
def member_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Add an account to the team with a role, or change its role there."""
    team = get_object_or_404(Team, pk=pk)
    form = MemberForm(request.POST)
    if not form.is_valid():
        return _detail_page(request, team, member_form=form)
    role, username = form.cleaned_data["role"], form.cleaned_data["username"]
    _membership, before = add_member(team, form.user, role)
    values = {"user": username, "role": role, "team": team.name, "before": before}
    if before == role:
        messages.info(request, _("%(user)s already is %(role)s in team %(team)s.") % values)
    else:
        record("team.member.add" if before is None else "team.member.role", request=request, target=team,
               team=team.name, detail={"user": username, "role": role, "before": before})
        messages.success(request, (_("Added %(user)s to team %(team)s as %(role)s.") if before is None
                                   else _("%(user)s is now %(role)s in team %(team)s (was %(before)s).")) % values)
    return redirect("teams:detail", team.pk)


@require_POST
@admin_required
def member_remove(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=pk)
    membership = get_object_or_404(Membership.objects.select_related("user"), team=team, user_id=user_pk)
    remove_member(team, membership.user)
    username = membership.user.get_username()
    record("team.member.remove", request=request, target=team, team=team.name,
           detail={"user": username, "role": membership.role})
    messages.success(request, _("Removed %(user)s from team %(team)s.") % {"user": username, "team": team.name})
    return redirect("teams:detail", team.pk)


@require_POST
@admin_required
def grant_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Grant the team a pool with a quota, or change the quota of its grant there."""
    team = get_object_or_404(Team, pk=pk)
    form = GrantForm(request.POST, team=team)
    if not form.is_valid():
        return _detail_page(request, team, grant_form=form)
    pool, data = form.cleaned_data["pool"], form.cleaned_data
    grant, changed = grant_pool(team, pool, data["max_size"], data["max_volumes"])
    where = {"pool": f"{pool.host.name}/{pool.name}", "pool_id": pool.pk}
    values = {"team": team.name, "pool": pool.name, "host": pool.host.name}
    if changed is None:
        record("team.grant", request=request, target=team, team=team.name,
               detail={**where, "max_virtual_bytes": grant.max_virtual_bytes, "max_volumes": grant.max_volumes})
        messages.success(request, _("Team %(team)s may now use pool %(pool)s on %(host)s.") % values)
    elif changed:
        record("team.quota", request=request, target=team, team=team.name, detail={**where, **changed})
        messages.success(request, _("Saved the quota of team %(team)s in pool %(pool)s.") % values)
    else:
        messages.info(request, _("The quota of team %(team)s in pool %(pool)s is unchanged.") % values)
    return redirect("teams:detail", team.pk)


@require_POST
@admin_required
def grant_revoke(request: HttpRequest, pk: int, pool_pk: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=pk)
    pool = get_object_or_404(StoragePool.objects.select_related("host").filter(grants__team=team), pk=pool_pk)
    revoke_pool(team, pool)
    record("team.revoke", request=request, target=team, team=team.name,
           detail={"pool": f"{pool.host.name}/{pool.name}", "pool_id": pool.pk})
    if team.all_pools:
        message = _("Team %(team)s may no longer use pool %(pool)s on %(host)s. It may still use every pool: turn "
                    "that off in the team's settings.")
    else:
        message = _("Team %(team)s may no longer use pool %(pool)s on %(host)s.")
    messages.success(request, message % {"team": team.name, "pool": pool.name, "host": pool.host.name})
    return redirect("teams:detail", team.pk)


@member_required
def my_teams(request: HttpRequest) -> HttpResponse:
    """The user's teams, their role in each and the pools each may use, with the team's quota usage."""
    teams = [{"membership": m, "grants": grants_of(m.team)}
             for m in teams_of(request.user).order_by("team__name")]
    return render(request, "pools/my_teams.html", {"teams": teams})
