from django.contrib import admin, messages

from . import operations
from .forms import HostForm
from .models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostForm  # the same URI allow-list as the app's own host form
    list_display = ("name", "uri", "enabled", "status", "last_seen_at", "last_synced_at")
    search_fields = ("name", "uri")

    # Every change goes through operations.py, as the app's own pages do: audited, a new host synced at once, a
    # removal locked against a running sync.
    def save_model(self, request, obj: Host, form, change: bool) -> None:
        if change:
            operations.edit(form, request=request)
        else:
            _host, _job, why = operations.add(form, user=request.user, request=request)
            if why:  # the host is added; its first sync could not start
                self.message_user(request, why, messages.WARNING)

    def get_deleted_objects(self, objs, request):
        # The pools, volumes and jobs below a host go with it, as on the app's own page, though their admins
        # are read-only (Django's admin would otherwise refuse the removal for want of those permissions).
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj: Host) -> None:
        operations.forget(obj, request=request)

    def delete_queryset(self, request, queryset) -> None:
        for host in queryset:
            operations.forget(host, request=request)
