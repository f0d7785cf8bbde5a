from django.contrib import admin

from audit.admin import ReadOnlyAdmin

from .models import Volume


@admin.register(Volume)
class VolumeAdmin(ReadOnlyAdmin):  # the sync's mirror of libvirt
    list_display = ("name", "pool", "format", "capacity", "allocation")
    list_filter = ("format", "pool")
    search_fields = ("name", "path")
