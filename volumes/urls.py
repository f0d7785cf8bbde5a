from django.urls import path

from . import views
from .urls_ops import urlpatterns as operation_urls
from .urls_tools import urlpatterns as tool_urls
from .urls_transfer import urlpatterns as transfer_urls

app_name = "volumes"
urlpatterns = [
    path("<int:pk>/", views.volume_detail, name="detail"),
    path("<int:pk>/team/", views.volume_team, name="team"),
    path("in-pool/<int:pool_pk>/named/<str:name>/", views.volume_by_name, name="by_name"),
    path("names/", views.volume_name_options, name="name_options"),
    *operation_urls,
    *transfer_urls,
    *tool_urls,
]
