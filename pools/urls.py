from django.urls import path

from . import views

app_name = "pools"
urlpatterns = [
    path("<int:pk>/", views.pool_detail, name="detail"),
    path("<int:pk>/volumes/", views.pool_volumes, name="volumes"),
    path("<int:pk>/card/", views.pool_card, name="card"),
    path("<int:pk>/libvirt/", views.pool_live, name="live"),
    path("<int:pk>/do/<slug:action>/", views.pool_action, name="action"),
    path("<int:pk>/build/", views.pool_build, name="build"),
    path("<int:pk>/delete/", views.pool_delete, name="delete"),
    path("<int:pk>/policy/", views.pool_policy, name="policy"),
    path("define/on/<int:host_pk>/", views.pool_define, name="define"),
]
