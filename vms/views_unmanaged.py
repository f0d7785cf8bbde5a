"""Admin pages: a host's unmanaged storage report, adopting an image into a pool, switching a VM's disk to it.

The report reads the inventory and, for a host that is this machine, the pool directories (vms/unmanaged.py:
scandir and lstat, bounded, never on a network file system). Adopt and switch are jobs (vms/adopt_tasks.py);
launching records them in the audit log (jobs.runner.launch), and so does their end.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from accounts.roles import admin_required
from hosts.models import Domain, Host
from jobs.runner import JobError
from volumes import image_files

from . import adopt
from .unmanaged import build_report


@admin_required
def unmanaged_report(request: HttpRequest, host_pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=host_pk)
    return render(request, "vms/unmanaged.html", {"host": host, "report": build_report(host),
                                                  "tools_refusal": image_files.unavailable_reason(host),
                                                  "roots": image_files.import_roots()})


@admin_required
def adopt_image(request: HttpRequest, host_pk: int) -> HttpResponse:
    """Copy a file of a report row (?path=…, and &vm=…&target=… for a VM's disk) into a new pool volume."""
    host = get_object_or_404(Host, pk=host_pk)
    initial = {key: request.GET.get(key, "") for key in ("path", "vm", "target")}
    form = adopt.AdoptForm(request.POST or None, host=host, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            job = adopt.start_adopt(user=request.user, request=request, form=form)
        except JobError as exc:
            form.add_error(None, str(exc))
        else:
            for warning in form.warnings:
                messages.warning(request, warning)
            return redirect(job)
    return render(request, "vms/adopt.html", {"host": host, "form": form, "roots": image_files.import_roots()},
                  status=400 if form.errors else 200)


@admin_required
def switch_disk(request: HttpRequest, pk: int, target: str, job_pk: int) -> HttpResponse:
    """Confirm, then switch the stopped VM's disk to the volume an adopt job made of its file."""
    vm = get_object_or_404(Domain.objects.select_related("host"), pk=pk)
    disk = get_object_or_404(vm.disks.all(), target=target)
    adopted = adopt.adopt_job_for(vm, target, job_pk)
    refusal = adopt.switch_refusal(vm, adopted)
    if request.method == "POST":
        if request.POST.get("confirm") != target:
            messages.error(request, _("Confirm the switch of %(target)s with the button below.") % {"target": target})
        elif refusal:
            messages.error(request, _("Refused: %(reason)s") % {"reason": refusal})
        else:
            try:
                return redirect(adopt.start_switch(user=request.user, request=request, vm=vm, adopted=adopted))
            except JobError as exc:
                messages.error(request, str(exc))
    return render(request, "vms/switch.html", {"vm": vm, "disk": disk, "adopted": adopted, "refusal": refusal})
