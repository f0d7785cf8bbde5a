"""URLs of volume operations: create, clone, resize, delete, wipe."""

from django.urls import path

from . import views_ops

urlpatterns: list = [
    path("new/in-pool/<int:pool_pk>/", views_ops.volume_create, name="create"),
    path("new/in-pool/<int:pool_pk>/backing-options/", views_ops.backing_options, name="backing_options"),
    path("<int:pk>/clone/", views_ops.volume_clone, name="clone"),
    path("<int:pk>/resize/", views_ops.volume_resize, name="resize"),
    path("<int:pk>/delete/", views_ops.volume_delete, name="delete"),
    path("<int:pk>/wipe/", views_ops.volume_wipe, name="wipe"),
]
