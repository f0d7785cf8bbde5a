from django.urls import path

from . import views

app_name = "volumes"
urlpatterns = [
    path("<int:pk>/", views.volume_detail, name="detail"),
]
