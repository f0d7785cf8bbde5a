from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    label = "inventory"
    verbose_name = "Inventory sync"

    def ready(self) -> None:
        from hosts.signals import pools_changed

        from .sync import sync_after_change

        pools_changed.connect(sync_after_change, dispatch_uid="inventory.sync_after_change")
