from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from accounts.roles import admin_required, is_admin, member_required
from audit.log import record
from jobs.models import Job
from pools.models import StoragePool

from .models import Volume
from .quota import VolumeTeamForm

MAX_CHAIN = 16  # qemu refuses deeper chains long before this; it also stops loops
NAME_OPTIONS = 20  # suggestions under a volume name field; typing more narrows them


def backing_chain(volume: Volume) -> list[dict]:
    """The backing chain from the inventory: each link a managed Volume or an unmanaged path."""
    chain: list[dict] = []
    path, fmt = volume.backing_path, volume.backing_format
    seen = {volume.path}
    while path and len(chain) < MAX_CHAIN and path not in seen:
        seen.add(path)
        link = Volume.objects.select_related("pool").filter(path=path, pool__host_id=volume.pool.host_id).first()
        chain.append({"path": path, "format": fmt, "volume": link})
        if link is None:
            break
        path, fmt = link.backing_path, link.backing_format
    return chain


@require_safe
@member_required
def volume_by_name(request: HttpRequest, pool_pk: int, name: str) -> HttpResponse:
    """The volume's page, by its pool and name: where a job that made a volume leads (tasks.lead_to_volume)."""
    volume = Volume.objects.visible_to(request.user).filter(pool_id=pool_pk, name=name).first()
    if volume is None:
        raise Http404(_("There is no volume %(name)s in that pool now, or you may not see it.") % {"name": name})
    return redirect(volume)


@require_safe
@member_required
def volume_name_options(request: HttpRequest) -> HttpResponse:
    """Suggestions for a field that takes a volume's name (a <datalist>'s options, htmx): the names that contain
    ?volume=, in the pool ?pool= or, without one, in the started pools of the host ?host= (each labelled with its
    pool), in name order, from the inventory. Only from pools the user may see."""
    typed = request.GET.get("volume", "").strip()
    pool_pk, host_pk = request.GET.get("pool", ""), request.GET.get("host", "")
    volumes = Volume.objects.visible_to(request.user).filter(name__icontains=typed)
    if pool_pk.isdecimal():  # a digit to str.isdigit ("²") is no number to int()
        volumes = volumes.filter(pool_id=pool_pk)
    elif host_pk.isdecimal():
        volumes = volumes.filter(pool__host_id=host_pk, pool__state=StoragePool.State.ACTIVE)
    else:
        volumes = volumes.none()
    options = volumes.order_by("name", "pool__name").values_list("name", "pool__name")[:NAME_OPTIONS]
    return render(request, "volumes/_name_options.html", {"options": options, "labelled": not pool_pk.isdecimal()})


@member_required
def volume_detail(request: HttpRequest, pk: int) -> HttpResponse:
    volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool", "pool__host"), pk=pk)
    context = {
        "volume": volume,
        "pool": volume.pool,
        "chain": backing_chain(volume),
        "users": list(volume.users()),
        "active_jobs": Job.objects.active().filter(pool=volume.pool, volume_name=volume.name),
        "team_form": VolumeTeamForm(volume=volume, user=request.user) if is_admin(request.user) else None,
    }
    return render(request, "volumes/volume_detail.html", context)


@require_POST
@admin_required
def volume_team(request: HttpRequest, pk: int) -> HttpResponse:
    """An admin sets whose the volume is (the quota it counts against); audited with the team before and after."""
    volume = get_object_or_404(Volume.objects.select_related("pool", "team"), pk=pk)
    form = VolumeTeamForm(request.POST, volume=volume, user=request.user)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["team"]))
        return redirect(volume)
    before, after = volume.team, form.cleaned_data["team"]
    Volume.objects.filter(pk=volume.pk).update(team=after)
    record("volume.team", request=request, target=volume,
           detail={"from": before.name if before else None, "to": after.name if after else None})
    messages.success(request, _("%(volume)s now counts against team %(team)s's quota.")
                     % {"volume": volume.name, "team": after.name} if after else
                     _("%(volume)s now counts against no team's quota.") % {"volume": volume.name})
    return redirect(volume)
