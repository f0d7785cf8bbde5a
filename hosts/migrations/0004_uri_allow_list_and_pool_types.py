"""Hosts whose URI the allow-list refuses are disabled (not deleted), with the reason; and each host
keeps the pool types its libvirt supports, recorded by checks and syncs so no page has to ask."""

from django.conf import settings
from django.db import migrations, models

from virtstorage.virt.errors import InvalidRequest
from virtstorage.virt.uris import check_uri


def refusal_reason(message: str) -> str:
    return f"Disabled by virtstorage: its URI is not one the app may open. {message}"


def disable_refused_uris(apps, schema_editor) -> None:
    """Disable every host with a refused URI and say why; the row, its pools and history stay."""
    Host = apps.get_model("hosts", "Host")
    key_dir = getattr(settings, "LIBVIRT_KEY_DIR", None)
    for host in Host.objects.all():
        try:
            check_uri(host.uri, key_dir=key_dir)
        except InvalidRequest as exc:
            host.enabled = False
            host.disabled_reason = refusal_reason(str(exc))
            host.save(update_fields=["enabled", "disabled_reason"])


class Migration(migrations.Migration):

    dependencies = [
        ('hosts', '0003_host_direct_io'),
    ]

    operations = [
        migrations.AddField(
            model_name='host',
            name='disabled_reason',
            field=models.TextField(blank=True, help_text='Why virtstorage disabled the host itself: a URI it may not open. Saving the host with an allowed URI clears it.'),
        ),
        migrations.AddField(
            model_name='host',
            name='pool_types',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='host',
            name='pool_types_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(disable_refused_uris, migrations.RunPython.noop),
    ]
