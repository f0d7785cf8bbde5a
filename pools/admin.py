from django.contrib import admin

from audit.admin import ReadOnlyAdmin

from .models import StoragePool


@admin.register(StoragePool)
class StoragePoolAdmin(ReadOnlyAdmin):  # the sync's mirror of libvirt
    list_display = ("name", "host", "type", "state", "capacity", "allocation", "available")
    list_filter = ("type", "state", "host")
    search_fields = ("name", "target_path")
