from django.contrib import admin

from .models import AuditRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only the app writes, shown read-only: no add, change or delete, whoever asks. The audit log is
    append-only; the inventory (pools, volumes) mirrors libvirt, and the next sync would undo a hand edit; jobs
    and requests change by their own steps (the runner, transitions under locks)."""

    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "target", "outcome", "client_ip")
    list_filter = ("outcome",)
    search_fields = ("username", "action", "target")
    show_full_result_count = False
