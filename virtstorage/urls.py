from django.contrib import admin
from django.urls import include, path

from pools import views as pool_views

urlpatterns = [
    path("", pool_views.dashboard, name="dashboard"),
    path("accounts/tokens/", include("api.token_urls")),
    path("accounts/", include("accounts.urls")),
    path("hosts/", include("hosts.urls")),
    path("pools/", include("pools.urls")),
    path("teams/", include("pools.team_urls")),
    path("volumes/", include("volumes.urls")),
    path("vms/", include("vms.urls")),
    path("jobs/", include("jobs.urls")),
    path("requests/", include("provisioning.urls")),
    path("audit/", include("audit.urls")),
    path("notifications/", include("notifications.urls")),
    path("api/", include("api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "api.errors.not_found"  # JSON under /api/, the page elsewhere
