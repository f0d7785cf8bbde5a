"""The audit page's filters (django-filter): the same FilterSet narrows the table and the CSV export."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import django_filters
from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import AuditRecord


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class AuditFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="username", label=_("User"),
                                     widget=forms.TextInput(attrs={"list": "audit-users", "size": 12}))
    team = django_filters.CharFilter(field_name="team", lookup_expr="icontains", label=_("Team"),
                                     widget=forms.TextInput(attrs={"size": 12}))
    action = django_filters.CharFilter(method="filter_action", label=_("Action"),
                                       help_text=_("Exact (pool.start), or a prefix ending in a dot (pool.)."),
                                       widget=forms.TextInput(attrs={"list": "audit-actions", "size": 14}))
    target_type = django_filters.CharFilter(label=_("Target type"),
                                            widget=forms.TextInput(attrs={"list": "audit-target-types", "size": 8}))
    target_id = django_filters.CharFilter(label=_("Target id"), widget=forms.TextInput(attrs={"size": 8}))
    target = django_filters.CharFilter(lookup_expr="icontains", label=_("Target contains"))
    outcome = django_filters.ChoiceFilter(choices=AuditRecord.Outcome.choices, empty_label=_("any"),
                                          label=_("Outcome"))
    since = django_filters.DateFilter(method="filter_since", label=_("From"),
                                      widget=forms.DateInput(attrs={"type": "date"}))
    until = django_filters.DateFilter(method="filter_until", label=_("To"),
                                      widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = AuditRecord
        fields: list[str] = []

    def filter_action(self, queryset, name, value):
        if value.endswith("."):  # a prefix, as a range the (action, at) index answers
            return queryset.filter(action__gte=value, action__lt=value[:-1] + chr(ord(".") + 1))
        return queryset.filter(action=value)

    def filter_since(self, queryset, name, value):
        return queryset.filter(at__gte=_day_start(value))

    def filter_until(self, queryset, name, value):
        return queryset.filter(at__lt=_day_start(value + timedelta(days=1)))


# Offered as suggestions in the form (any text is accepted: the teams work and later apps add their own).
KNOWN_ACTIONS = [
    "login", "login.failed", "logout", "password.change", "account.create", "account.password_reset",
    "account.deactivate", "account.reactivate", "account.admin_change",
    "host.create", "host.edit", "host.delete", "host.test", "host.sync",
    "pool.define", "pool.policy", "pool.start", "pool.stop", "pool.refresh", "pool.autostart", "pool.build",
    "pool.delete", "pool.undefine", "volume.create", "volume.clone", "volume.resize", "volume.delete",
    "volume.wipe", "volume.import", "volume.team", "vm.adopt", "upload.create", "upload.abandon", "upload", "download",
    "team.grant",
]
KNOWN_TARGET_TYPES = ["host", "pool", "volume", "upload", "job", "user", "team"]
