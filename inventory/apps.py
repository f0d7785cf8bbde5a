from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InventoryConfig(AppConfig):
    name = "inventory"
    label = "inventory"
    verbose_name = _("Inventory sync")

    def ready(self) -> None:
        from hosts.signals import pools_changed

        from .sync import sync_after_change

        pools_changed.connect(sync_after_change, dispatch_uid="inventory.sync_after_change")
