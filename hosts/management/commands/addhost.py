from django.core.management.base import BaseCommand, CommandError

from hosts.forms import HostForm
from hosts.models import Host
from hosts.status import check_host


class Command(BaseCommand):
    help = "Register a libvirt host (or update the URI of an existing one) and test the connection."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("uri", help="libvirt URI, e.g. qemu:///system or qemu+ssh://root@kvm1/system")
        parser.add_argument("--description", default="")

    def handle(self, name, uri, description, **options):
        instance = Host.objects.filter(name=name).first()
        form = HostForm({"name": name, "uri": uri, "description": description, "enabled": True}, instance=instance)
        if not form.is_valid():
            raise CommandError("; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        host = form.save()
        if check_host(host):
            self.stdout.write(f"{host.name}: {host.uri} is online (libvirt {host.libvirt_version} on {host.hostname})")
        else:
            self.stdout.write(f"{host.name}: saved, but {host.uri} is unreachable: {host.last_error}")
