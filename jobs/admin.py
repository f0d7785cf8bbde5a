from django.contrib import admin

from audit.admin import ReadOnlyAdmin

from .models import Job


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):  # a job's state is the runner's: a hand edit would lie to its page
    list_display = ("pk", "kind", "state", "pool_name", "volume_name", "created_by", "created_at")
    list_filter = ("state", "kind")
    search_fields = ("pool_name", "volume_name")
