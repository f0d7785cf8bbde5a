"""The approval queue's filters (django-filter): by team and by pool, offering only what the approver reviews."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from pools.models import StoragePool

from . import rules
from .models import ProvisioningRequest


class QueueFilter(django_filters.FilterSet):
    team = django_filters.ModelChoiceFilter(queryset=Team.objects.none(), label=_("Team"), empty_label=_("every team"))
    pool = django_filters.ModelChoiceFilter(queryset=StoragePool.objects.none(), label=_("Pool"),
                                            empty_label=_("every pool"))

    class Meta:
        model = ProvisioningRequest
        fields: list[str] = []

    def __init__(self, data=None, queryset=None, *, user, **kwargs) -> None:
        super().__init__(data, queryset, **kwargs)
        mine = rules.approvable(user)
        self.filters["team"].queryset = Team.objects.filter(pk__in=mine.values("team_id")).order_by("name")
        self.filters["pool"].queryset = (StoragePool.objects.filter(pk__in=mine.values("pool_id"))
                                         .select_related("host").order_by("host__name", "name"))
