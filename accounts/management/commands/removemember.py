from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from accounts.teams import remove_member


class Command(BaseCommand):
    help = "Take an account out of a team (the account and its site-wide role stay)."

    def add_arguments(self, parser):
        parser.add_argument("team")
        parser.add_argument("username")

    def handle(self, team, username, **options):
        chosen = Team.objects.filter(name=team).first()
        if chosen is None:
            raise CommandError(f"there is no team {team!r}")
        user = get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"there is no account named {username!r}")
        if not remove_member(chosen, user):
            raise CommandError(f"{username} is not in team {chosen.name}")
        self.stdout.write(f"Removed {username} from team {chosen.name}")
