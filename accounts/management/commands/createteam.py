import argparse

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from accounts.team_forms import TeamForm, form_errors, size_text


class Command(BaseCommand):
    help = ("Create a team, or change one: options not given keep their value. Grant it pools with "
            "manage.py grantpool, add people with manage.py addmember.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--description")
        parser.add_argument("--all-pools", action=argparse.BooleanOptionalAction, default=None,
                            help="The team may use every pool, present and future, without grants.")
        parser.add_argument("--auto-approve-max", metavar="SIZE",
                            help="Requests up to this virtual size (e.g. 20G) are approved by the system; "
                                 "'none' for never.")

    def handle(self, name, description, all_pools, auto_approve_max, **options):
        team = Team.objects.filter(name=name).first() or Team()
        data = {"name": name, "description": team.description, "all_pools": team.all_pools,
                "auto_approve_max": size_text(team.auto_approve_max_bytes)}
        if description is not None:
            data["description"] = description
        if all_pools is not None:
            data["all_pools"] = all_pools
        if auto_approve_max is not None:
            data["auto_approve_max"] = "" if auto_approve_max.strip().lower() == "none" else auto_approve_max
        form = TeamForm(data, instance=team)
        if not form.is_valid():
            raise CommandError(form_errors(form))
        created = team.pk is None
        team = form.save()
        auto = size_text(team.auto_approve_max_bytes) or "never"
        self.stdout.write(f"{'Created' if created else 'Updated'} team {team.name} (every pool: "
                          f"{'yes' if team.all_pools else 'no'}, auto-approve up to: {auto})")
