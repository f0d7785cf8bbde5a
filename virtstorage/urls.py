from django.contrib import admin
from django.urls import include, path

from hosts import views as host_views

urlpatterns = [
    path("", host_views.dashboard, name="dashboard"),
    path("accounts/", include("accounts.urls")),
    path("hosts/", include("hosts.urls")),
    path("pools/", include("pools.urls")),
    path("volumes/", include("volumes.urls")),
    path("jobs/", include("jobs.urls")),
    path("admin/", admin.site.urls),
]
