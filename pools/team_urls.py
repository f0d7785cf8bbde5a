"""Teams' pages (pools/team_views.py), under /teams/."""

from django.urls import path

from . import team_views

app_name = "teams"
urlpatterns = [
    path("", team_views.team_list, name="list"),
    path("new/", team_views.team_create, name="create"),
    path("mine/", team_views.my_teams, name="mine"),
    path("<int:pk>/", team_views.team_detail, name="detail"),
    path("<int:pk>/edit/", team_views.team_edit, name="edit"),
    path("<int:pk>/members/", team_views.member_set, name="member_set"),
    path("<int:pk>/members/<int:user_pk>/remove/", team_views.member_remove, name="member_remove"),
    path("<int:pk>/grants/", team_views.grant_set, name="grant_set"),
    path("<int:pk>/grants/<int:pool_pk>/revoke/", team_views.grant_revoke, name="grant_revoke"),
]
