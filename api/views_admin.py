"""Teams (admins: all; anyone else: their own) and the audit log (admins), filtered as on their pages."""

from __future__ import annotations

from accounts.models import Team
from accounts.roles import is_admin
from audit.models import AuditRecord

from . import filters, serializers
from .pagination import Newest
from .permissions import HasRole, IsAdmin
from .views_base import ReadOnlyViewSet


class TeamViewSet(ReadOnlyViewSet):
    """Teams with their members and pools: every team for an admin, your own teams for anyone else."""

    queryset = Team.objects.none()
    serializer_class = serializers.TeamSerializer
    filterset_class = filters.TeamFilter
    ordering_fields = ["name"]
    ordering = ["name"]

    def visible(self, user):
        teams = Team.objects.prefetch_related("memberships__user", "pools")
        return teams if is_admin(user) else teams.filter(memberships__user=user).distinct()


class AuditViewSet(ReadOnlyViewSet):
    """The audit log (admins), newest first, by cursor; the same filters as the audit page."""

    queryset = AuditRecord.objects.none()
    serializer_class = serializers.AuditRecordSerializer
    permission_classes = [HasRole, IsAdmin]
    filterset_class = filters.StrictAuditFilter
    pagination_class = Newest
    ordering_fields: list[str] = []

    def visible(self, user):
        return AuditRecord.objects.all()
