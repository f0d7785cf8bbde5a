from django.apps import AppConfig


class VmsConfig(AppConfig):
    name = "vms"
    label = "vms"
    verbose_name = "Virtual machines and their disks"
