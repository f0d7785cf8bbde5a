"""The list filters (django-filter): by host, pool, team, state and a name search; ordering is ?ordering=."""

from __future__ import annotations

import django_filters
from django import forms
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.filters import OrderingFilter

from accounts.models import Team
from audit.filters import AuditFilter
from hosts.models import Domain, Host
from jobs.models import Job
from pools.models import StoragePool
from provisioning.models import ProvisioningRequest
from volumes.models import Upload, Volume

MAX_ID = 2**63 - 1


class IdField(forms.IntegerField):
    """A whole number; given empty (?pool=) it is refused, not read as no filter."""

    def to_python(self, value):
        if value == "":
            raise forms.ValidationError(_("Give an id, or leave the parameter out."), code="invalid")
        return super().to_python(value)


class IdFilter(django_filters.NumberFilter):
    """An object's id: a whole number the database can hold (a larger one is a 400, not a crash)."""

    field_class = IdField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class StrictOrdering(OrderingFilter):
    """?ordering= with a field the list does not sort on is a 400, not silently ignored."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params == "":
            raise exceptions.ValidationError({self.ordering_param: [_("Give a field to sort on, or leave it out.")]})
        if params:
            fields = [param.strip() for param in params.split(",")]
            allowed = {name for name, _label in self.get_valid_fields(queryset, view, {"request": request})}
            unknown = [field for field in fields if field.lstrip("-") not in allowed]
            if unknown:
                raise exceptions.ValidationError({self.ordering_param: [
                    _("Cannot sort on %(fields)s; choose from %(allowed)s.")
                    % {"fields": ", ".join(unknown), "allowed": ", ".join(sorted(allowed))}]})
        return super().get_ordering(request, queryset, view)


class StrictFilters(django_filters.FilterSet):
    """A filter given with a value it cannot take is a 400, never quietly no filter: an empty choice, number or
    date (?state=), a yes/no that is neither true nor false (?enabled=null)."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, found in self.filters.items():
            if name not in self.data or isinstance(found, django_filters.CharFilter):
                continue
            given = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data[name]]
            if isinstance(found, django_filters.BooleanFilter):
                wrong = [value for value in given if value not in ("true", "false")]
            else:
                wrong = [value for value in given if value == ""]
            if wrong:
                self.form.add_error(name, forms.ValidationError(
                    _("Give true or false.") if isinstance(found, django_filters.BooleanFilter) else
                    _("Give a value, or leave the parameter out."), code="invalid"))
                valid = False
        return valid


class StrictAuditFilter(StrictFilters, AuditFilter):
    """The audit page's own filters (audit.filters), strict about what they are given."""


class HostFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = Host
        fields = ["status", "enabled"]


class PoolFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    team = IdFilter(field_name="grants__team", label="Granted to this team")
    host = IdFilter(field_name="host", label="Host")

    class Meta:
        model = StoragePool
        fields = ["state", "type"]


class VolumeFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    host = IdFilter(field_name="pool__host", label="Host")
    pool = IdFilter(field_name="pool", label="Pool")
    team = IdFilter(method="filter_team", label="In a pool this team may use")
    unsafe = django_filters.BooleanFilter(method="filter_unsafe", label="Refused by the image check")

    class Meta:
        model = Volume
        fields = ["format"]

    def filter_team(self, queryset, name, value):
        team = Team.objects.filter(pk=value).first()
        if team is None:
            return queryset.none()
        return queryset if team.all_pools else queryset.filter(pool__in=team.grants.values("pool_id"))

    def filter_unsafe(self, queryset, name, value):
        return queryset.exclude(unsafe_reason="") if value else queryset.filter(unsafe_reason="")


class JobFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="volume_name", lookup_expr="icontains", label="Volume contains")

    host = IdFilter(field_name="host", label="Host")
    pool = IdFilter(field_name="pool", label="Pool")

    class Meta:
        model = Job
        fields = ["state", "kind"]


class UploadFilter(StrictFilters):
    pool = IdFilter(field_name="pool", label="Pool")

    class Meta:
        model = Upload
        fields = ["state", "mode"]


class TeamFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = Team
        fields = ["all_pools"]


class RequestFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    host = IdFilter(field_name="pool__host", label="Host")
    team = IdFilter(field_name="team", label="Team")
    pool = IdFilter(field_name="pool", label="Pool")

    class Meta:
        model = ProvisioningRequest
        fields = ["state"]


class VmFilter(StrictFilters):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    host = IdFilter(field_name="host", label="Host")
    team = IdFilter(field_name="team", label="Team")

    class Meta:
        model = Domain
        fields = ["state"]
