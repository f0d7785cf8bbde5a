from django.urls import path

from . import views, views_review

app_name = "requests"

urlpatterns = [
    path("", views.request_list, name="list"),
    path("new/", views.request_pick_pool, name="pick_pool"),
    path("new/in-pool/<int:pool_pk>/", views.request_new, name="new"),
    path("<int:pk>/", views.request_detail, name="detail"),
    path("<int:pk>/state/", views.request_state, name="state"),
    path("<int:pk>/edit/", views.request_edit, name="edit"),
    path("<int:pk>/withdraw/", views.request_withdraw, name="withdraw"),
    path("<int:pk>/retry/", views.request_retry, name="retry"),
    path("approvals/", views_review.queue, name="queue"),
    path("approvals/review/", views_review.review, name="review"),
]
