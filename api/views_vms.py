"""VMs (vms/): the ones your teams own, with their disks; attach a volume and detach a disk through the VM
pages' forms and the same job starters (vms.forms, vms.jobs)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from rest_framework import serializers as drf
from rest_framework.decorators import action

from hosts.models import Domain
from vms.classify import classify
from vms.forms import AttachVolumeForm
from vms.jobs import start_attach, start_detach

from . import filters, serializers
from .errors import body, valid
from .form_schema import form_serializer
from .views_base import ReadOnlyViewSet, job_accepted, operation

AttachVolume = form_serializer("AttachVolume", AttachVolumeForm)


class DetachDisk(drf.Serializer):
    target = drf.CharField(help_text="The disk's target device, e.g. vdb.")
    confirm = drf.CharField(help_text="The target again, to confirm.")


class VmViewSet(ReadOnlyViewSet):
    """VMs of your teams (every VM for admins and teams that may use every pool)."""

    queryset = Domain.objects.none()
    serializer_class = serializers.VmSerializer
    detail_serializer_class = serializers.VmDetailSerializer
    filterset_class = filters.VmFilter
    ordering_fields = ["name", "state", "host"]
    ordering = ["host__name", "name"]

    def visible(self, user):
        return Domain.objects.visible_to(user).prefetch_related("disks")

    def _changeable(self, pk) -> Domain:
        vm = get_object_or_404(self.get_queryset().select_related("host"), pk=pk)
        if not vm.may_change_disks(self.request.user):
            raise PermissionDenied(_("To attach or detach disks you need to be an operator of a team that owns this "
                                     "VM."))
        return vm

    @operation("Attach a volume of the VM's host (operators of the VM's team)", request=AttachVolume)
    @action(detail=True, methods=["post"], url_path="attach", url_name="attach")
    def attach(self, request, pk=None):
        vm = self._changeable(pk)
        form = valid(AttachVolumeForm(body(request), vm=vm, user=request.user))
        volume = form.cleaned_data["volume_row"]
        return job_accepted(start_attach(user=request.user, request=request, vm=vm, volume=volume,
                                         params=form.job_params(vm, volume)))

    @operation("Detach a disk: persistently, and live when the VM runs", request=DetachDisk)
    @action(detail=True, methods=["post"], url_path="detach", url_name="detach")
    def detach(self, request, pk=None):
        vm = self._changeable(pk)
        given = DetachDisk(data=body(request))
        given.is_valid(raise_exception=True)
        target = given.validated_data["target"]
        disk = classify([get_object_or_404(vm.disks.all(), target=target)])[0]
        if given.validated_data["confirm"] != target:
            raise drf.ValidationError({"confirm": [_("Type %(target)s to confirm the detach.") % {"target": target}]})
        return job_accepted(start_detach(user=request.user, request=request, vm=vm, disk=disk))
