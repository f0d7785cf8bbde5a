from django.contrib import admin

from .models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "uri", "enabled", "status", "last_seen_at", "last_synced_at")
    search_fields = ("name", "uri")
