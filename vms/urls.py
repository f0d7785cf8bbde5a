from django.urls import path

from . import views, views_unmanaged

app_name = "vms"
urlpatterns = [
    path("on-host/<int:host_pk>/", views.vm_list, name="list"),
    path("<int:pk>/", views.vm_detail, name="detail"),
    path("<int:pk>/attach/", views.vm_attach, name="attach"),
    path("<int:pk>/disks/<slug:target>/detach/", views.vm_detach, name="detach"),
    path("<int:pk>/team/", views.vm_set_team, name="team"),
    path("attach-volume/<int:volume_pk>/", views.volume_attach, name="attach_volume"),
    # Unmanaged storage (admins): the report, adopting an image into a pool, switching a disk to it.
    path("unmanaged/on-host/<int:host_pk>/", views_unmanaged.unmanaged_report, name="unmanaged"),
    path("unmanaged/on-host/<int:host_pk>/adopt/", views_unmanaged.adopt_image, name="adopt"),
    path("<int:pk>/disks/<slug:target>/switch/<int:job_pk>/", views_unmanaged.switch_disk, name="switch"),
]
