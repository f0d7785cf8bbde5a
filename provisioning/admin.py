from django.contrib import admin

from audit.admin import ReadOnlyAdmin

from .models import ProvisioningRequest, RequestEvent


class EventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "actor", "kind", "comment")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProvisioningRequest)
class ProvisioningRequestAdmin(ReadOnlyAdmin):
    """A request changes through its pages (transitions, locks, audit), never by hand here."""

    list_display = ("pk", "name", "pool", "team", "state", "requested_by", "created_at")
    list_filter = ("state", "team")
    search_fields = ("name", "purpose")
    inlines = [EventInline]
