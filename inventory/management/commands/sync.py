from django.core.management.base import BaseCommand, CommandError

from hosts.models import Host
from inventory.sync import sync_host


class Command(BaseCommand):
    help = "Sync pools and volumes from libvirt into the inventory, for one host or all enabled hosts."

    def add_arguments(self, parser):
        parser.add_argument("host", nargs="?", help="host name (default: every enabled host)")
        parser.add_argument("--no-refresh", action="store_true", help="do not ask libvirt to rescan pools first")

    def handle(self, host=None, no_refresh=False, **options):
        hosts = Host.objects.filter(enabled=True)
        if host:
            hosts = Host.objects.filter(name=host)
            if not hosts:
                raise CommandError(f"no host named {host!r}")
        failed = False
        for item in hosts:
            result = sync_host(item, refresh=not no_refresh)
            if result is None:
                failed = True
                self.stderr.write(f"{item.name}: unreachable: {item.last_error}")
            else:
                self.stdout.write(f"{item.name}: {result}")
        if failed:
            raise CommandError("some hosts could not be synced")
