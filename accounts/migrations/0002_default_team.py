from django.db import migrations

DEFAULT_TEAM = "default"


def default_team(apps, schema_editor):
    """Today's accounts keep working: every member lands in a team that may use every pool, as an operator
    (members could create, resize, wipe and delete before teams came). Admins narrow it down later."""
    Group = apps.get_model("auth", "Group")
    Team = apps.get_model("accounts", "Team")
    Membership = apps.get_model("accounts", "Membership")
    members = Group.objects.filter(name="member").first()
    if members is None or not members.user_set.exists():
        return
    team, _ = Team.objects.get_or_create(
        name=DEFAULT_TEAM, defaults={"all_pools": True,
                                     "description": "Everyone who was a member before teams; sees every pool."})
    for user in members.user_set.all():
        Membership.objects.get_or_create(team=team, user=user, defaults={"role": "operator"})


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_teams"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(default_team, migrations.RunPython.noop)]
