"""URLs of uploads and downloads."""

from django.urls import path

from . import chunk_views, download_view, upload_views

urlpatterns: list = [
    path("uploads/", upload_views.upload_create, name="upload_create"),
    path("uploads/new/", upload_views.upload_page, name="upload_new"),
    path("uploads/<uuid:pk>/", upload_views.upload_detail, name="upload"),
    path("uploads/<uuid:pk>/chunks", chunk_views.upload_chunk, name="upload_chunks"),
    path("uploads/<uuid:pk>/holes", chunk_views.upload_holes, name="upload_holes"),
    path("uploads/<uuid:pk>/complete", upload_views.upload_complete, name="upload_complete"),
    path("<int:pk>/download", download_view.volume_download, name="download"),
]
