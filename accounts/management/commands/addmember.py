from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, Team
from accounts.team_forms import MemberForm, form_errors
from accounts.teams import add_member


class Command(BaseCommand):
    help = "Put an account in a team with a role, or change the role it has there."

    def add_arguments(self, parser):
        parser.add_argument("team")
        parser.add_argument("username")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.MEMBER)

    def handle(self, team, username, role, **options):
        chosen = Team.objects.filter(name=team).first()
        if chosen is None:
            raise CommandError(f"there is no team {team!r}: create it with manage.py createteam {team}")
        form = MemberForm({"username": username, "role": role})
        if not form.is_valid():
            raise CommandError(form_errors(form))
        _, before = add_member(chosen, form.user, role)
        if before is None:
            self.stdout.write(f"Added {username} to team {chosen.name} as {role}")
        else:
            self.stdout.write(f"{username} in team {chosen.name}: {before} -> {role}")
