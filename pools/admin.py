from django.contrib import admin

from .models import StoragePool


@admin.register(StoragePool)
class StoragePoolAdmin(admin.ModelAdmin):
    list_display = ("name", "host", "type", "state", "capacity", "allocation", "available")
    list_filter = ("type", "state", "host")
    search_fields = ("name", "target_path")
