"""VMs as rows of their own (Domain: state, vCPUs, memory, the owning team) and each disk's bus, device,
read-only, shareable, cache and source type. The disks kept so far belong to no Domain row: they go, and the
next sync of each host writes them again with their VM."""

import django.db.models.deletion
from django.db import migrations, models


def forget_disks_without_a_vm(apps, schema_editor) -> None:
    apps.get_model("hosts", "DomainDisk").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_teams'),
        ('hosts', '0004_uri_allow_list_and_pool_types'),
    ]

    operations = [
        migrations.RunPython(forget_disks_without_a_vm, migrations.RunPython.noop),
        migrations.AddField(
            model_name='domaindisk',
            name='bus',
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name='domaindisk',
            name='cache',
            field=models.CharField(blank=True, help_text="Empty: the hypervisor's default.", max_length=16),
        ),
        migrations.AddField(
            model_name='domaindisk',
            name='device',
            field=models.CharField(blank=True, help_text='disk, cdrom, floppy or lun.', max_length=16),
        ),
        migrations.AddField(
            model_name='domaindisk',
            name='readonly',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='domaindisk',
            name='shareable',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='domaindisk',
            name='source_type',
            field=models.CharField(blank=True, help_text='file, block, volume, network, dir.', max_length=16),
        ),
        migrations.CreateModel(
            name='Domain',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=255)),
                ('uuid', models.CharField(max_length=36)),
                ('state', models.CharField(blank=True, help_text='As virsh says it: running, shut off, paused...', max_length=32)),
                ('vcpus', models.PositiveIntegerField(default=0)),
                ('memory_kib', models.BigIntegerField(default=0)),
                ('persistent', models.BooleanField(default=True)),
                ('synced_at', models.DateTimeField(blank=True, null=True)),
                ('host', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='domains', to='hosts.host')),
                ('team', models.ForeignKey(blank=True, help_text='The team that owns the VM: its operators attach and detach disks. Set by an admin.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='domains', to='accounts.team')),
            ],
            options={
                'ordering': ['host__name', 'name'],
            },
        ),
        migrations.AddField(
            model_name='domaindisk',
            name='machine',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='disks', to='hosts.domain'),
        ),
        migrations.AlterField(
            model_name='domaindisk',
            name='machine',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='disks', to='hosts.domain'),
        ),
        migrations.AddConstraint(
            model_name='domain',
            constraint=models.UniqueConstraint(fields=('host', 'uuid'), name='unique_domain_uuid_per_host'),
        ),
    ]
