from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HistoryConfig(AppConfig):
    name = "history"
    label = "history"
    verbose_name = _("Storage history")

    def ready(self) -> None:
        from hosts.signals import pools_synced

        from .recorder import record_synced_pools

        pools_synced.connect(record_synced_pools, dispatch_uid="history.record_synced_pools")
