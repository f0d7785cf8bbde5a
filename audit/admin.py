from django.contrib import admin

from .models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    """Read-only: no add, change or delete, whoever asks (the log is append-only)."""

    list_display = ("at", "username", "action", "target", "outcome", "client_ip")
    list_filter = ("outcome",)
    search_fields = ("username", "action", "target")
    show_full_result_count = False
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
