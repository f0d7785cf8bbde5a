from django.contrib import admin

from .forms import HostForm
from .models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostForm  # the same URI allow-list as the app's own host form
    list_display = ("name", "uri", "enabled", "status", "last_seen_at", "last_synced_at")
    search_fields = ("name", "uri")
