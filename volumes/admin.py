from django.contrib import admin

from .models import Volume


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = ("name", "pool", "format", "capacity", "allocation")
    list_filter = ("format", "pool")
    search_fields = ("name", "path")
