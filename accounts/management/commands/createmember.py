from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ADMIN, MEMBER, grant


class Command(BaseCommand):
    help = "Create (or update) a user with the member or admin role."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", choices=[MEMBER, ADMIN], default=MEMBER)

    def handle(self, username, password, role, **options):
        if not username.strip():
            raise CommandError("username must not be empty")
        user, created = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = role == ADMIN
        user.save()
        grant(user, role)
        self.stdout.write(f"{'Created' if created else 'Updated'} {role} {username}")
