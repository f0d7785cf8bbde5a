from django.urls import path

from . import views

app_name = "pools"
urlpatterns = [
    path("<int:pk>/", views.pool_detail, name="detail"),
    path("<int:pk>/volumes/", views.pool_volumes, name="volumes"),
]
