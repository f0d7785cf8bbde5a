"""Hosts through the API, as on their pages: add, edit and remove (admins), test the connection (admins) and sync
(whoever sees the host). The pages' forms check the data (hosts.forms: the URI allow-list, the name typed to
confirm a removal) and the pages' own steps do the rest (hosts.operations: audit entries, the first sync of a
new host, the connection test's task, the sync job)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.forms.models import model_to_dict
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers as drf
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.roles import is_admin
from hosts import operations
from hosts.forms import HostDeleteForm, HostForm
from hosts.models import Host

from . import serializers
from .errors import body, valid
from .form_schema import confirm, form_serializer
from .views_base import job_accepted, operation

KEEPS = "A field left out keeps its value"
AddHost = form_serializer("AddHost", HostForm, extra={
    "enabled": drf.BooleanField(required=False, help_text="Left out: true. Disabled hosts are neither synced nor "
                                                          "changed."),
    "direct_io": drf.BooleanField(required=False, help_text="Left out: true. Direct file I/O where the host is "
                                                            "the app's own machine.")})
EditHost = form_serializer("EditHost", HostForm, optional=True)
EditHost.__doc__ = f"{KEEPS} (the host's page shows them all)."
DeleteHost = form_serializer("DeleteHost", HostDeleteForm, extra={"confirm_name": confirm("host")})


class HostAdded(drf.Serializer):
    """201: the host is added; its first sync runs as a job (null, with a warning, when it could not start)."""

    host = serializers.HostSerializer()
    sync = serializers.JobAcceptedSerializer(allow_null=True)
    warnings = drf.ListField(child=drf.CharField())


class CheckAccepted(drf.Serializer):
    """202: the connection test is queued; the host's last_checked_at moves past the one given here when it ran."""

    host = drf.IntegerField()
    url = drf.CharField(help_text="The host in the API: status, last_error, last_checked_at and the facts.")
    last_checked_at = drf.DateTimeField(allow_null=True, help_text="The last test before this one.")


def _host_form(data, host: Host | None = None) -> HostForm:
    """The page's HostForm with the body over the host's current values (a new host's defaults), so that a field
    left out keeps its value: the page's form always posts them all."""
    current = model_to_dict(host or Host(), fields=HostForm._meta.fields)
    return HostForm({**current, **data}, instance=host)


class HostActions:
    """Adding, editing, removing, testing and syncing hosts (HostViewSet)."""

    def _admin_host(self, pk) -> Host:
        host = get_object_or_404(self.get_queryset(), pk=pk)
        if not is_admin(self.request.user):
            raise PermissionDenied(_("Only admins can change hosts or test their connection."))
        return host

    @extend_schema(summary="Add a host (admins); its first sync starts at once", request=AddHost,
                   responses={201: HostAdded})
    def create(self, request):
        if not is_admin(request.user):
            raise PermissionDenied(_("Only admins can add hosts."))
        form = valid(_host_form(body(request)))
        host, job, refusal = operations.add(form, user=request.user, request=request)
        return Response({"host": serializers.HostSerializer(host).data,
                         "sync": serializers.accepted(job) if job else None, "warnings": [refusal] if refusal else []},
                        status=status.HTTP_201_CREATED)

    @extend_schema(summary="Edit a host (admins)", description=f"{KEEPS}.", request=EditHost,
                   responses={200: serializers.HostSerializer})
    @action(detail=True, methods=["post"], url_path="edit", url_name="edit")
    def edit(self, request, pk=None):
        host = self._admin_host(pk)
        form = valid(_host_form(body(request), host))
        return Response(serializers.HostSerializer(operations.edit(form, request=request)).data)

    @extend_schema(summary="Remove a host from virtstorage (admins; type its name). Nothing on the host changes",
                   request=DeleteHost, responses={204: OpenApiResponse(description="Removed.")})
    @action(detail=True, methods=["post"], url_path="delete", url_name="delete")
    def delete_host(self, request, pk=None):
        host = self._admin_host(pk)
        valid(HostDeleteForm(body(request), host=host))
        operations.forget(host, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Test the host's connection now (admins)", request=None,
                   responses={202: OpenApiResponse(CheckAccepted, description="The test is queued.")})
    @action(detail=True, methods=["post"], url_path="check", url_name="check")
    def check(self, request, pk=None):
        host = self._admin_host(pk)
        since = host.last_checked_at
        operations.start_check(host, request=request)
        return Response(CheckAccepted({"host": host.pk, "url": reverse("api:host-detail", args=[host.pk]),
                                       "last_checked_at": since}).data, status=status.HTTP_202_ACCEPTED)

    @operation("Sync the host's pools, volumes and VMs now (whoever sees the host)")
    @action(detail=True, methods=["post"], url_path="sync", url_name="sync")
    def sync(self, request, pk=None):
        host = get_object_or_404(self.get_queryset(), pk=pk)
        return job_accepted(operations.start_sync(host, user=request.user, request=request))
