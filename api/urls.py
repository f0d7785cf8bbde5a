"""/api/: the router's viewsets, the OpenAPI schema (/api/schema/) and its documentation (/api/docs/, Swagger UI;
/api/redoc/), generated from the code by drf-spectacular, their assets served from our static files."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from . import views_admin, views_jobs, views_requests, views_storage, views_vms

app_name = "api"

router = SimpleRouter()
router.register("hosts", views_storage.HostViewSet, basename="host")
router.register("pools", views_storage.PoolViewSet, basename="pool")
router.register("volumes", views_storage.VolumeViewSet, basename="volume")
router.register("jobs", views_jobs.JobViewSet, basename="job")
router.register("uploads", views_jobs.UploadViewSet, basename="upload")
router.register("requests", views_requests.RequestViewSet, basename="request")
router.register("approvals", views_requests.ApprovalViewSet, basename="approval")
router.register("teams", views_admin.TeamViewSet, basename="team")
router.register("audit", views_admin.AuditViewSet, basename="audit")
router.register("vms", views_vms.VmViewSet, basename="vm")

# The schema and its pages are public (like a login page): they describe the API, they hold no data.
urlpatterns = [
    path("schema/", login_not_required(SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[])),
         name="schema"),
    path("docs/", login_not_required(SpectacularSwaggerView.as_view(url_name="api:schema", permission_classes=[],
                                                                    authentication_classes=[])), name="docs"),
    path("redoc/", login_not_required(SpectacularRedocView.as_view(url_name="api:schema", permission_classes=[],
                                                                   authentication_classes=[])), name="redoc"),
    *router.urls,
]
