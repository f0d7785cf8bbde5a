from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "hosts"
    label = "hosts"

    def ready(self) -> None:
        from django.conf import settings

        from virtstorage.virt import connection, uris

        # The libvirt layer knows no settings: tell it where host keys may live, and which hosts' daemon is
        # this machine's (a worker beside a remote host).
        uris.configure(key_dir=settings.LIBVIRT_KEY_DIR)
        if settings.LIBVIRT_HOSTS_HERE:
            connection.serve_here(settings.LIBVIRT_HOSTS_HERE, settings.LOCAL_LIBVIRT_URI)
