from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

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
    # The translations the page scripts use (gettext in static/js); public, like the static files themselves.
    path("jsi18n/", login_not_required(JavaScriptCatalog.as_view()), name="javascript-catalog"),
    # Browsers ask for it on pages that name no icon (Django's admin, the API's docs).
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
         name="favicon"),
]

handler404 = "api.errors.not_found"  # JSON under /api/, the page elsewhere
handler400 = "api.errors.bad_request"  # a BadRequest's reason, on the page or in the API's shape
handler403 = "api.errors.forbidden"  # the page, saying why (DRF answers its own views' refusals)
