from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("pk", "kind", "state", "pool_name", "volume_name", "created_by", "created_at")
    list_filter = ("state", "kind")
    search_fields = ("pool_name", "volume_name")
