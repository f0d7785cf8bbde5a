"""Hosts, pools and volumes: lists and details from the inventory, and the operations, each through the pages'
own form (volumes.operations, pools.lifecycle) and answered 202 with its job."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import serializers as drf
from rest_framework.decorators import action

from accounts import access
from hosts.models import Host
from pools import lifecycle
from pools.forms import BuildPoolForm, DeletePoolForm
from pools.models import StoragePool
from volumes import operations
from volumes.forms import VolumeCloneForm, VolumeCreateForm, VolumeDeleteForm, VolumeResizeForm, VolumeWipeForm
from volumes.models import Volume

from . import filters, serializers
from .errors import body, valid
from .form_schema import confirm, force, form_serializer
from .views_base import ReadOnlyViewSet, job_accepted, operation
from .views_define import PoolDefineMixin
from .views_hosts import HostActions
from .views_tools import PoolImport, VolumeTools

CreateVolume = form_serializer("CreateVolume", VolumeCreateForm)
CloneVolume = form_serializer("CloneVolume", VolumeCloneForm)
ResizeVolume = form_serializer("ResizeVolume", VolumeResizeForm, extra={"force": force()})
DeleteVolume = form_serializer("DeleteVolume", VolumeDeleteForm, extra={"confirm": confirm("volume"), "force": force()})
WipeVolume = form_serializer("WipeVolume", VolumeWipeForm, exclude=("algorithm",), extra={
    "algorithm": drf.CharField(help_text="zero, or a scrub pattern the host offers."),
    "confirm": confirm("volume"), "force": force()})
BuildPool = form_serializer("BuildPool", BuildPoolForm, extra={
    "overwrite": drf.BooleanField(required=False, help_text="fs, disk, logical: format."),
    "confirm_name": drf.CharField(required=False, help_text="The pool's name, to overwrite.")})
DeletePool = form_serializer("DeletePool", DeletePoolForm, extra={"confirm_name": confirm("pool")})


class HostViewSet(HostActions, ReadOnlyViewSet):
    """Hosts with a pool the user may see (every host for an admin); added, edited, removed and tested by admins,
    synced by whoever sees them (api/views_hosts.py)."""

    queryset = Host.objects.none()
    serializer_class = serializers.HostSerializer
    filterset_class = filters.HostFilter
    ordering_fields = ["name", "status", "last_synced_at"]
    ordering = ["name"]

    def visible(self, user):
        return Host.objects.visible_to(user)


class PoolViewSet(PoolDefineMixin, PoolImport, ReadOnlyViewSet):
    """Pools the user's teams may use; defining one (POST, api/views_define.py) and their lifecycle for admins; new
    volumes for operators."""

    queryset = StoragePool.objects.none()
    serializer_class = serializers.PoolSerializer
    filterset_class = filters.PoolFilter
    ordering_fields = ["name", "capacity", "allocation", "available", "volume_count", "host"]
    ordering = ["host__name", "name"]

    def visible(self, user):
        return StoragePool.objects.visible_to(user).select_related("host")

    def _pool(self, pk, action_name: str) -> StoragePool:
        pool = get_object_or_404(self.get_queryset(), pk=pk)
        access.require(self.request.user, action_name, pool)
        return pool

    @operation("Create a volume in the pool (operators)", request=CreateVolume)
    @action(detail=True, methods=["post"], url_path="volumes", url_name="create-volume")
    def create_volume(self, request, pk=None):
        pool = self._pool(pk, "create")
        form = valid(operations.bind("create", body(request), user=request.user, pool=pool))
        return job_accepted(operations.launch("create", form, user=request.user, request=request, pool=pool),
                            form.warnings)

    @operation("Build the pool's storage (admins; a stopped pool)", request=BuildPool)
    @action(detail=True, methods=["post"], url_path="build", url_name="build")
    def build(self, request, pk=None):
        pool = self._pool(pk, "manage")
        form = valid(lifecycle.build_form(body(request), pool))
        return job_accepted(lifecycle.build(pool, form, user=request.user, request=request))

    @operation("Delete the pool's storage and forget it (admins)", request=DeletePool)
    @action(detail=True, methods=["post"], url_path="delete", url_name="delete")
    def delete_pool(self, request, pk=None):
        pool = self._pool(pk, "manage")
        form = valid(lifecycle.delete_form(body(request), pool))
        return job_accepted(lifecycle.delete(pool, form, user=request.user, request=request))


def _quick(verb: str, summary: str):
    """A quick lifecycle step as a POST action of pools: start, stop, refresh, autostart-on/off, undefine."""

    def step(self, request, pk=None):
        pool = self._pool(pk, "manage")
        return job_accepted(lifecycle.quick(pool, verb, user=request.user, request=request))

    step.__name__ = step.__qualname__ = verb.replace("-", "_")  # before @action, which maps POST to the name
    return operation(summary)(action(detail=True, methods=["post"], url_path=verb, url_name=verb)(step))


for _verb, _summary in [("start", "Start the pool (admins)"), ("stop", "Stop the pool; its data stays (admins)"),
                        ("refresh", "Rescan the pool (admins)"), ("autostart-on", "Autostart on (admins)"),
                        ("autostart-off", "Autostart off (admins)"),
                        ("undefine", "Forget the pool; its storage stays (admins)")]:
    setattr(PoolViewSet, _verb.replace("-", "_"), _quick(_verb, _summary))


class VolumeViewSet(VolumeTools, ReadOnlyViewSet):
    """Volumes of the pools the user may see; clone, check and convert (members; api/views_tools.py), resize, wipe
    and delete (operators)."""

    queryset = Volume.objects.none()
    serializer_class = serializers.VolumeSerializer
    detail_serializer_class = serializers.VolumeDetailSerializer
    filterset_class = filters.VolumeFilter
    ordering_fields = ["name", "capacity", "allocation", "format"]
    ordering = ["name"]

    def visible(self, user):
        return Volume.objects.visible_to(user).with_in_use().select_related("pool")  # pool: listed_at

    def _operate(self, request, pk, op: str):
        volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool__host"), pk=pk)
        access.require(request.user, operations.ACTIONS[op], volume.pool)
        form = valid(operations.bind(op, body(request), user=request.user, volume=volume))
        return job_accepted(operations.launch(op, form, user=request.user, request=request, volume=volume),
                            getattr(form, "warnings", []))

    @operation("Clone the volume into a pool of the same host (members)", request=CloneVolume)
    @action(detail=True, methods=["post"], url_path="clone", url_name="clone")
    def clone(self, request, pk=None):
        return self._operate(request, pk, "clone")

    @operation("Resize the volume (operators; shrinking needs confirm_shrink)", request=ResizeVolume)
    @action(detail=True, methods=["post"], url_path="resize", url_name="resize")
    def resize(self, request, pk=None):
        return self._operate(request, pk, "resize")

    @operation("Wipe the volume (operators; type its name)", request=WipeVolume)
    @action(detail=True, methods=["post"], url_path="wipe", url_name="wipe")
    def wipe(self, request, pk=None):
        return self._operate(request, pk, "wipe")

    @operation("Delete the volume and its data (operators; type its name)", request=DeleteVolume)
    @action(detail=True, methods=["post"], url_path="delete", url_name="delete")
    def delete_volume(self, request, pk=None):
        return self._operate(request, pk, "delete")

