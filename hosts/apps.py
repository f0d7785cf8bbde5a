from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "hosts"
    label = "hosts"

    def ready(self) -> None:
        from django.conf import settings

        from virtstorage.virt import uris

        # The libvirt layer knows no settings: tell it where host keys may live.
        uris.configure(key_dir=settings.LIBVIRT_KEY_DIR)
