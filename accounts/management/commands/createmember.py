from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, Team
from accounts.people import set_up
from accounts.roles import ADMIN, MEMBER
from accounts.teams import default_team

ROLES = (MEMBER, Membership.Role.OPERATOR, ADMIN)


class Command(BaseCommand):
    help = ("Create (or update) a user: a member or operator of a team (the default team, which may use every "
            "pool, unless --team says which), or a site-wide admin.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", choices=ROLES, default=MEMBER)
        parser.add_argument("--team", help="An existing team's name (manage.py createteam makes one).")

    def handle(self, username, password, role, team=None, **options):
        if not username.strip() or username != username.strip():
            raise CommandError("the username must not be empty or have spaces at its ends")
        chosen = default_team() if team is None else Team.objects.filter(name=team).first()
        if chosen is None:
            raise CommandError(f"there is no team {team!r}: create it with manage.py createteam {team}")
        user, created = get_user_model().objects.get_or_create(username=username)
        set_up(user, password=password, site_role=ADMIN if role == ADMIN else MEMBER, team=chosen, team_role=role)
        where = "" if role == ADMIN else f" in team {chosen.name}"
        self.stdout.write(f"{'Created' if created else 'Updated'} {role} {username}{where}")
