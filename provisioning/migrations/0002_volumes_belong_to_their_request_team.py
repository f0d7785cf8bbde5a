"""A volume a ready request made belongs to the request's team: the quota rule now counts a team's volumes
(Volume.team) rather than its requests' volumes."""

from django.db import migrations


def forwards(apps, schema_editor):
    Request = apps.get_model("provisioning", "ProvisioningRequest")
    Volume = apps.get_model("volumes", "Volume")
    for volume_id, team_id in (Request.objects.filter(state="ready", volume__isnull=False, volume__team__isnull=True)
                               .values_list("volume_id", "team_id")):
        Volume.objects.filter(pk=volume_id, team__isnull=True).update(team_id=team_id)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
        ("volumes", "0009_volume_and_upload_team"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
