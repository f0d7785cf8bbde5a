"""URLs of the image tools: the volume page's Image panel, check, convert and import (qemu-img)."""

from django.urls import path

from . import views_tools

urlpatterns: list = [
    path("<int:pk>/image/", views_tools.image_panel, name="image_panel"),
    path("<int:pk>/image/info/", views_tools.image_info, name="image_info"),
    path("<int:pk>/image/check/", views_tools.image_check, name="image_check"),
    path("<int:pk>/convert/", views_tools.image_convert, name="image_convert"),
    path("import/into-pool/<int:pool_pk>/", views_tools.image_import, name="image_import"),
]
