from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from accounts.team_forms import form_errors, size_text
from hosts.models import Host
from pools.models import PoolGrant, PoolRemoved, StoragePool
from pools.quotas import grant_pool
from pools.team_forms import GrantForm


def team_and_pool(team: str, host: str, pool: str) -> tuple[Team, StoragePool]:
    """The team and the pool named on the command line; CommandError saying which is unknown."""
    chosen = Team.objects.filter(name=team).first()
    if chosen is None:
        raise CommandError(f"there is no team {team!r}: create it with manage.py createteam {team}")
    found = StoragePool.objects.filter(host__name=host, name=pool).select_related("host").first()
    if found is None:
        if not Host.objects.filter(name=host).exists():
            raise CommandError(f"there is no host {host!r}: manage.py addhost registers one")
        raise CommandError(f"host {host!r} has no pool {pool!r} in the inventory (sync the host if the pool is new)")
    return chosen, found


def _given(value: str | None, current: str) -> str:
    """A limit option: not given keeps the current value, "none" removes the limit."""
    if value is None:
        return current
    return "" if value.strip().lower() == "none" else value


class Command(BaseCommand):
    help = ("Let a team use a pool, with a quota there, or change the quota of its grant: a limit not given "
            "keeps its value, 'none' removes it.")

    def add_arguments(self, parser):
        parser.add_argument("team")
        parser.add_argument("host", help="The host's name in virtstorage.")
        parser.add_argument("pool", help="The pool's name on that host.")
        parser.add_argument("--max-size", metavar="SIZE", help="Largest sum of virtual sizes, e.g. 500G, or none.")
        parser.add_argument("--max-volumes", metavar="N", help="Most volumes, or none.")

    def handle(self, team, host, pool, max_size, max_volumes, **options):
        team, pool = team_and_pool(team, host, pool)
        current = PoolGrant.objects.filter(team=team, pool=pool).first()
        data = {"pool": pool.pk,
                "max_size": _given(max_size, size_text(current.max_virtual_bytes) if current else ""),
                "max_volumes": _given(max_volumes, "" if current is None or current.max_volumes is None
                                      else str(current.max_volumes))}
        form = GrantForm(data, team=team)
        if not form.is_valid():
            raise CommandError(form_errors(form))
        try:
            grant, changed = grant_pool(team, pool, form.cleaned_data["max_size"], form.cleaned_data["max_volumes"])
        except PoolRemoved as exc:
            raise CommandError(str(exc)) from exc
        quota = (f"max size {size_text(grant.max_virtual_bytes) or 'no limit'}, "
                 f"max volumes {'no limit' if grant.max_volumes is None else grant.max_volumes}")
        verb = "Granted" if changed is None else "Updated the grant of"
        self.stdout.write(f"{verb} pool {pool.name} on {pool.host.name} to team {team.name}: {quota}")
