"""VM pages: a host's VMs, a VM with its disks, attaching a volume (from either side) and detaching a disk.

Pages read the inventory; attach and detach are jobs (vms/tasks.py). Domain.objects.visible_to decides
who sees a VM (a guessed id of another team's VM is a 404), changeable_by who changes its disks (403 for
one who only sees it), and accounts.access which volumes they may attach.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import access
from accounts.roles import admin_required, is_admin, member_required
from audit.log import record
from hosts.models import Domain, Host
from jobs.models import Job
from jobs.runner import JobError
from volumes.models import Volume

from . import jobs
from .adopt import adopted_copies
from .classify import classify
from .forms import AttachToVmForm, AttachVolumeForm, DiskOptionsForm, TeamForm


def _vm(request: HttpRequest, pk: int) -> Domain:
    return get_object_or_404(Domain.objects.visible_to(request.user).select_related("host", "team"), pk=pk)


def _changeable_vm(request: HttpRequest, pk: int) -> Domain:
    vm = _vm(request, pk)
    if not vm.may_change_disks(request.user):
        raise PermissionDenied(_("To attach or detach disks you need to be an operator of a team that owns this VM."))
    return vm


def _started(request: HttpRequest, start, form: forms.Form | None = None, **job) -> Job | None:
    """Start the job (vms/jobs.py); a refusal (queue down, volume busy) is shown and nothing is lost."""
    try:
        return start(user=request.user, request=request, **job)
    except JobError as exc:
        if form is None:
            messages.error(request, str(exc))
        else:
            form.add_error(None, str(exc))
        return None


@member_required
def vm_list(request: HttpRequest, host_pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=host_pk)
    vms = Domain.objects.visible_to(request.user).filter(host=host).annotate(disk_count=Count("disks"))
    if not Host.objects.visible_to(request.user).filter(pk=host.pk).exists() and not vms.exists():
        raise Http404(_("No such host."))
    return render(request, "vms/vm_list.html", {"host": host, "vms": vms})


@member_required
def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm(request, pk)
    disks = classify(list(vm.disks.all()))
    linked = set(Volume.objects.visible_to(request.user).filter(
        pk__in=[d.volume.pk for d in disks if d.managed]).values_list("pk", flat=True))
    may_change = vm.may_change_disks(request.user)
    context = {
        "vm": vm, "host": vm.host, "disks": disks, "linked": linked, "may_change": may_change,
        "attach_form": AttachVolumeForm(vm=vm, user=request.user) if may_change else None,
        "team_form": TeamForm(instance=vm) if is_admin(request.user) else None,
        "jobs": Job.objects.visible_to(request.user).filter(kind__startswith="vm-", params__uuid=vm.uuid)[:10],
        "adopted": adopted_copies(vm) if is_admin(request.user) else {},
    }
    return render(request, "vms/vm_detail.html", context)


def _attach_page(request: HttpRequest, form: DiskOptionsForm, vm: Domain | None, volume: Volume | None):
    no_vm = volume is not None and not form.fields["vm"].queryset.exists()  # said on the page, and Attach is off
    return render(request, "vms/attach.html", {"form": form, "vm": vm, "volume": volume, "no_vm": no_vm},
                  status=400 if form.errors else 200)


@member_required
def vm_attach(request: HttpRequest, pk: int) -> HttpResponse:
    """Attach a volume, picked by pool and name, to this VM."""
    vm = _changeable_vm(request, pk)
    form = AttachVolumeForm(request.POST or None, vm=vm, user=request.user)
    if request.method == "POST" and form.is_valid():
        volume = form.cleaned_data["volume_row"]
        job = _started(request, jobs.start_attach, form, vm=vm, volume=volume, params=form.job_params(vm, volume))
        if job:
            return redirect(job)
    return _attach_page(request, form, vm, None)


@member_required
def volume_attach(request: HttpRequest, volume_pk: int) -> HttpResponse:
    """Attach this volume to a VM of its host (the volume page's form)."""
    volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool", "pool__host"),
                               pk=volume_pk)
    access.require(request.user, "create", volume.pool)
    form = AttachToVmForm(request.POST or None, volume=volume, user=request.user)
    if request.method == "POST" and form.is_valid():
        vm = form.cleaned_data["vm"]
        job = _started(request, jobs.start_attach, form, vm=vm, volume=volume, params=form.job_params(vm, volume))
        if job:
            return redirect(job)
    return _attach_page(request, form, None, volume)


@member_required
def vm_detach(request: HttpRequest, pk: int, target: str) -> HttpResponse:
    """Confirm, then detach one disk: persistently, and live when the VM runs."""
    vm = _changeable_vm(request, pk)
    disk = classify([get_object_or_404(vm.disks.all(), target=target)])[0]
    if request.method == "POST":
        if request.POST.get("confirm") != target:
            messages.error(request, _("Confirm the detach of %(target)s with the button below.") % {"target": target})
        else:
            job = _started(request, jobs.start_detach, vm=vm, disk=disk)
            if job:
                return redirect(job)
    return render(request, "vms/detach.html", {"vm": vm, "disk": disk,
                                               "timeout": settings.VM_DETACH_TIMEOUT_SECONDS})


@require_POST
@admin_required
def vm_set_team(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_404(Domain.objects.select_related("host", "team"), pk=pk)
    before = vm.team.name if vm.team else ""
    form = TeamForm(request.POST, instance=vm)
    if not form.is_valid():
        messages.error(request, _("Pick a team."))
        return redirect(vm)
    form.save()
    after = vm.team.name if vm.team else ""
    record("vm.team", request=request, target_type="vm", target_id=str(vm.pk), target=f"VM {vm.name} on {vm.host}",
           team=after, detail={"from": before, "to": after, "uuid": vm.uuid})
    messages.success(request, _("%(vm)s now belongs to %(team)s.") % {"vm": vm.name, "team": after} if after
                     else _("%(vm)s now belongs to no team.") % {"vm": vm.name})
    return redirect(vm)
