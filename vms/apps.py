from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VmsConfig(AppConfig):
    name = "vms"
    label = "vms"
    verbose_name = _("Virtual machines and their disks")
