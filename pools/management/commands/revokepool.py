from django.core.management.base import BaseCommand, CommandError

from pools.quotas import revoke_pool

from .grantpool import team_and_pool


class Command(BaseCommand):
    help = "Take a pool's grant from a team: its members no longer see the pool. Nothing in the pool changes."

    def add_arguments(self, parser):
        parser.add_argument("team")
        parser.add_argument("host", help="The host's name in virtstorage.")
        parser.add_argument("pool", help="The pool's name on that host.")

    def handle(self, team, host, pool, **options):
        team, pool = team_and_pool(team, host, pool)
        if not revoke_pool(team, pool):
            raise CommandError(f"team {team.name} has no grant in pool {pool.name} on {pool.host.name}")
        note = " (it may still use every pool: the team has all pools)" if team.all_pools else ""
        self.stdout.write(f"Revoked pool {pool.name} on {pool.host.name} from team {team.name}{note}")
