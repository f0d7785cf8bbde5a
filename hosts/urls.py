from django.urls import path

from . import views

app_name = "hosts"
urlpatterns = [
    path("add/", views.host_create, name="add"),
    path("<int:pk>/", views.host_detail, name="detail"),
    path("<int:pk>/status/", views.host_status, name="status"),
    path("<int:pk>/edit/", views.host_edit, name="edit"),
    path("<int:pk>/delete/", views.host_delete, name="delete"),
    path("<int:pk>/test/", views.host_test, name="test"),
    path("<int:pk>/sync/", views.host_sync, name="sync"),
]
