from django.contrib import admin

from .models import ProvisioningRequest, RequestEvent


class EventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "actor", "kind", "comment")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProvisioningRequest)
class ProvisioningRequestAdmin(admin.ModelAdmin):
    """Read-only: a request changes through its pages (transitions, locks, audit), never by hand here."""

    list_display = ("pk", "name", "pool", "team", "state", "requested_by", "created_at")
    list_filter = ("state", "team")
    search_fields = ("name", "purpose")
    inlines = [EventInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
