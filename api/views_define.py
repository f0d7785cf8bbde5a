"""Defining a pool through the API: POST /api/pools/ with the host and the fields of the define page's form
(pools.define_forms: per pool type, or pasted XML), checked by that form and launched by the page's own
pools.lifecycle.start_define; answered 202 with the job. Admins only, as the page."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework import serializers as drf

from accounts.roles import is_admin
from hosts.models import Host
from pools import lifecycle
from pools.define_forms import TYPE_FIELDS, PoolDefineForm

from .errors import body, object_id, valid
from .form_schema import form_serializer
from .views_base import job_accepted, operation

DefinePool = form_serializer("DefinePool", PoolDefineForm, extra={
    "host": drf.IntegerField(help_text="The id of the host to define the pool on."),
    "type": drf.ChoiceField(choices=[*TYPE_FIELDS, "xml"], required=False,
                            help_text="The pool type whose fields follow (default dir), or xml for pasted XML."),
    "name": drf.CharField(required=False, allow_blank=True,
                          help_text="The pool's name (every type but xml): letters, digits and . _ + -"),
    "xml": drf.CharField(required=False, allow_blank=True,
                         help_text="With type xml: the pool's XML, as `virsh pool-dumpxml` prints it."),
})

DESCRIPTION = ("The define page's form checks the fields (names, paths inside POOL_ROOTS, duplicates) against the "
               "pool types the host's last check or sync recorded; the job defines the pool, syncs it and, with "
               "start_now, launches the job that builds and starts it. A host recorded unreachable is refused (400).")


class PoolDefineMixin:
    """POST on the pools' list: define a pool on a host (PoolViewSet)."""

    @operation("Define a pool on a host (admins)", request=DefinePool, description=DESCRIPTION)
    def create(self, request):
        if not is_admin(request.user):
            raise exceptions.PermissionDenied(_("Only admins define pools."))
        data = body(request)
        host = Host.objects.filter(pk=object_id(data.get("host", ""))).first()
        if host is None:
            raise exceptions.ValidationError({"host": _("Give the id of a host.")})
        supported = host.pool_type_support()
        if supported is None:
            raise exceptions.ValidationError({"host": _("virtstorage does not know yet which pool types libvirt on "
                                                        "%(host)s supports: check or sync the host first.")
                                              % {"host": host.name}})
        pool_type = str(data.get("type") or "dir")
        if refusal := lifecycle.type_refusal(host, pool_type, supported):
            raise exceptions.ValidationError({"type": refusal})
        form = lifecycle.define_form(data, host, pool_type, supported)
        if form.is_valid():
            lifecycle.refuse_unreachable(form, host)
        valid(form)
        return job_accepted(lifecycle.start_define(host, form.pool_xml(), form.cleaned_data.get("start_now", False),
                                                   user=request.user, request=request))
