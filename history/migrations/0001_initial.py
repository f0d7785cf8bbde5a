# Storage history: pool and team samples, rollup marks, pool forecasts.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_teams'),
        ('pools', '0002_teams'),
    ]

    operations = [
        migrations.CreateModel(
            name='PoolForecast',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('computed_at', models.DateTimeField()),
                ('days_left', models.FloatField(help_text='Empty: not filling (or too short a basis).', null=True)),
                ('bytes_per_day', models.FloatField(help_text='The trend of free space less the reserve.', null=True)),
                ('basis_from', models.DateTimeField(null=True)),
                ('basis_to', models.DateTimeField(null=True)),
                ('basis_samples', models.PositiveIntegerField(default=0)),
                ('in_horizon', models.BooleanField(default=False, help_text='Admins were notified; reset when it leaves.')),
                ('pool', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='forecast', to='pools.storagepool')),
            ],
        ),
        migrations.CreateModel(
            name='RollupMark',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('series', models.CharField(max_length=32)),
                ('resolution', models.CharField(choices=[('raw', 'raw (each sync)'), ('hour', 'hourly'), ('day', 'daily')], max_length=4)),
                ('done_until', models.DateTimeField()),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('series', 'resolution'), name='one_rollup_mark')],
            },
        ),
        migrations.CreateModel(
            name='PoolSample',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField()),
                ('resolution', models.CharField(choices=[('raw', 'raw (each sync)'), ('hour', 'hourly'), ('day', 'daily')], default='raw', max_length=4)),
                ('capacity', models.BigIntegerField()),
                ('allocation', models.BigIntegerField()),
                ('available', models.BigIntegerField()),
                ('virtual_total', models.BigIntegerField(help_text="Sum of the volumes' virtual sizes.")),
                ('volume_count', models.PositiveIntegerField()),
                ('allocation_max', models.BigIntegerField()),
                ('virtual_total_max', models.BigIntegerField()),
                ('available_min', models.BigIntegerField()),
                ('samples', models.PositiveIntegerField(default=1)),
                ('pool', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='samples', to='pools.storagepool')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('pool', 'resolution', 'at'), name='one_poolsample_per_time')],
            },
        ),
        migrations.CreateModel(
            name='TeamSample',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField()),
                ('resolution', models.CharField(choices=[('raw', 'raw (each sync)'), ('hour', 'hourly'), ('day', 'daily')], default='raw', max_length=4)),
                ('virtual_bytes', models.BigIntegerField()),
                ('volume_count', models.PositiveIntegerField()),
                ('virtual_bytes_max', models.BigIntegerField()),
                ('samples', models.PositiveIntegerField(default=1)),
                ('pool', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='team_samples', to='pools.storagepool')),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='samples', to='accounts.team')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('team', 'pool', 'resolution', 'at'), name='one_teamsample_per_time')],
            },
        ),
    ]
