"""URLs of uploads and downloads."""

from django.urls import path

from . import downloads, transfer

urlpatterns: list = [
    path("uploads/", transfer.upload_create, name="upload_create"),
    path("uploads/new/", transfer.upload_page, name="upload_new"),
    path("uploads/<uuid:pk>/", transfer.upload_detail, name="upload"),
    path("uploads/<uuid:pk>/chunks", transfer.upload_chunk, name="upload_chunks"),
    path("uploads/<uuid:pk>/holes", transfer.upload_holes, name="upload_holes"),
    path("uploads/<uuid:pk>/complete", transfer.upload_complete, name="upload_complete"),
    path("<int:pk>/download", downloads.volume_download, name="download"),
]
