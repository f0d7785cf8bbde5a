"""A team's quota in a pool: what counts against it, and the check. One rule for requests, forms and jobs.

A team's grant in a pool (pools.PoolGrant: max_volumes, max_virtual_bytes; empty means no limit) counts:

- the team's volumes there (``Volume.team``), at their virtual size as the inventory has them now. The job
  that made a volume for a team records the team: a request's create job, or a create, clone, convert or upload
  that a member or operator started for one of their teams (the form's "team" field);
- what is on its way: a queued or running job charged to the team (``params["charge"]``: a new volume, or a
  resize's growth), an upload into a new volume still under way (``Upload.team``), and what ``reserving``'s
  receivers add (provisioning: its approved requests not made yet).

A launch checks and reserves in one transaction, the grant's row locked (``hold``), so two launches cannot both
take the quota's last bytes; the form checks first, without the lock, to answer at once. A volume no team made
(an admin's, or one found by a sync) counts against no quota.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django import forms
from django.db.models import Count, Sum
from django.dispatch import Signal
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import access
from accounts.roles import is_admin
from jobs.models import Job
from jobs.rows import for_update
from jobs.runner import JobError
from pools.models import PoolGrant, StoragePool
from virtstorage.virt.units import binary_size

from .models import Upload, Volume

Pair = tuple[int, int]  # (team id, pool id)

# Sent with pools (a set of pool ids) and exclude (request pks not to count); each receiver returns
# {(team id, pool id): Reserved} of what it holds there. provisioning connects its approved requests.
reserving = Signal()


class QuotaExceeded(JobError):
    """The team's quota in the pool does not leave room; the message gives the numbers. A JobError: a launch
    refuses with it as with a busy volume, and the form shows it."""


@dataclass(frozen=True)
class Reserved:
    count: int = 0
    capacity: int = 0
    allocation: int = 0

    def __add__(self, other: Reserved) -> Reserved:
        return Reserved(self.count + other.count, self.capacity + other.capacity, self.allocation + other.allocation)


@dataclass(frozen=True)
class Usage:
    count: int  # the team's volumes in the inventory
    capacity: int  # their virtual sizes
    reserved: Reserved

    @property
    def total_count(self) -> int:
        return self.count + self.reserved.count

    @property
    def total_capacity(self) -> int:
        return self.capacity + self.reserved.capacity


def volumes_of(teams: Iterable[int], pools: Iterable[int]) -> dict[Pair, tuple[int, int]]:
    """(volumes, virtual bytes) of each team's volumes in each pool."""
    rows = (Volume.objects.filter(team_id__in=set(teams), pool_id__in=set(pools)).order_by()
            .values("team_id", "pool_id").annotate(n=Count("pk"), virtual=Sum("capacity")))
    return {(row["team_id"], row["pool_id"]): (row["n"], row["virtual"] or 0) for row in rows}


def reservations(pools: Iterable[int], *, exclude_requests: Iterable[int] = ()) -> dict[Pair, Reserved]:
    """Every team's reservations in these pools: charged jobs, uploads under way, and reserving's receivers."""
    pools = set(pools)
    held: dict[Pair, Reserved] = defaultdict(Reserved)
    for job in Job.objects.active().filter(params__has_key="charge").values_list("params", flat=True):
        charge = job["charge"]
        if charge.get("pool") in pools:
            held[job.get("team"), charge["pool"]] += Reserved(charge["count"], charge["capacity"],
                                                              charge.get("allocation", 0))
    for row in (Upload.objects.filter(pool_id__in=pools, team__isnull=False, mode=Upload.Mode.NEW,
                                      state__in=[Upload.State.RECEIVING, Upload.State.SENDING])
                .order_by().values("team_id", "pool_id").annotate(n=Count("pk"), virtual=Sum("capacity"))):
        held[row["team_id"], row["pool_id"]] += Reserved(row["n"], row["virtual"] or 0)
    for _receiver, found in reserving.send(sender=Reserved, pools=pools, exclude=set(exclude_requests)):
        for pair, reserved in found.items():
            held[pair] += reserved
    return dict(held)


def check(team, pool: StoragePool, grant: PoolGrant | None, usage: Usage, *, count: int, capacity: int,
          request: bool = False) -> None:
    """Raise QuotaExceeded unless count more volumes and capacity more virtual bytes fit the team's grant in the
    pool (none: no limit). request: a provisioning request asks (its sentence says so)."""
    if grant is None:
        return
    words = {"team": team.name, "pool": pool.name, "count": usage.count, "held": usage.reserved.count,
             "max": grant.max_volumes}
    if count and grant.max_volumes is not None and usage.total_count + count > grant.max_volumes:
        if request:
            raise QuotaExceeded(ngettext(
                "Team %(team)s may have %(max)s volume in pool %(pool)s; it has %(count)s and %(held)s on the way "
                "(approved requests, jobs and uploads under way); this request needs one more.",
                "Team %(team)s may have %(max)s volumes in pool %(pool)s; it has %(count)s and %(held)s on the way "
                "(approved requests, jobs and uploads under way); this request needs one more.",
                grant.max_volumes) % words)
        raise QuotaExceeded(ngettext(
            "Team %(team)s may have %(max)s volume in pool %(pool)s; it has %(count)s and %(held)s on the way "
            "(approved requests, jobs and uploads under way); a new volume would be one more.",
            "Team %(team)s may have %(max)s volumes in pool %(pool)s; it has %(count)s and %(held)s on the way "
            "(approved requests, jobs and uploads under way); a new volume would be one more.",
            grant.max_volumes) % words)
    if grant.max_virtual_bytes is not None and capacity > 0 and \
            usage.total_capacity + capacity > grant.max_virtual_bytes:
        words.update(max=binary_size(grant.max_virtual_bytes), used=binary_size(usage.capacity),
                     held=binary_size(usage.reserved.capacity), size=binary_size(capacity))
        if request:
            raise QuotaExceeded(_("Team %(team)s may use %(max)s in pool %(pool)s; it uses %(used)s and has %(held)s "
                                  "on the way (approved requests, jobs and uploads under way); this request needs "
                                  "%(size)s.") % words)
        raise QuotaExceeded(_("Team %(team)s may use %(max)s in pool %(pool)s; it uses %(used)s and has %(held)s on "
                              "the way (approved requests, jobs and uploads under way); this needs %(size)s more.")
                            % words)


@dataclass(frozen=True)
class Charge:
    """What an operation adds to a team's usage in a pool: count new volumes and capacity virtual bytes
    (allocation of them preallocated). team None: an admin's, counted against no quota."""

    team: object | None
    pool: StoragePool
    count: int
    capacity: int
    allocation: int = 0

    def check(self, *, lock: bool = False) -> None:
        """QuotaExceeded unless it fits; lock (inside a transaction, at the launch): the grant's row is locked
        first, so that a second launch waits for this one's job row and then counts it."""
        if self.team is None:
            return
        grants = PoolGrant.objects.filter(team_id=self.team.pk, pool_id=self.pool.pk)
        grant = (for_update(grants) if lock else grants).first()
        if grant is None or (grant.max_volumes is None and grant.max_virtual_bytes is None):
            return
        count, capacity = volumes_of([self.team.pk], [self.pool.pk]).get((self.team.pk, self.pool.pk), (0, 0))
        usage = Usage(count, capacity, reservations([self.pool.pk]).get((self.team.pk, self.pool.pk), Reserved()))
        check(self.team, self.pool, grant, usage, count=self.count, capacity=self.capacity)

    def hold(self) -> None:
        """For jobs.runner.launch's hold: the check again, under the grant's lock, in the launch's transaction."""
        self.check(lock=True)

    def job_params(self) -> dict:
        """What the job carries: the team its volume will belong to, and what it reserves while it runs."""
        if self.team is None:
            return {}
        return {"team": self.team.pk, "charge": {"pool": self.pool.pk, "count": self.count,
                                                  "capacity": self.capacity, "allocation": self.allocation}}


def launch_fields(params: dict, charge: Charge | None) -> dict:
    """jobs.runner.launch's params and hold for a job that makes or grows a volume: what the charge adds to the
    params (its team, its reservation), and its check under the grant's lock. No charge: the params alone."""
    if charge is None:
        return {"params": params}
    return {"params": {**params, **charge.job_params()}, "hold": charge.hold}


class ChargedForm(forms.Form):
    """A form that makes a volume for a team: its "team" field and, once clean, its Charge (``self.charge``).

    A member or operator in one team that may use the pool is not asked; in several, they choose. An admin may
    choose none: the volume then counts against no quota."""

    charge: Charge | None = None

    def add_team_field(self, user, pool: StoragePool | None = None) -> None:
        """pool: where the volume goes, when the form does not choose it (its teams alone are offered)."""
        self.user = user
        teams = access.charge_teams(user, pool)
        admin = is_admin(user)
        field = forms.ModelChoiceField(
            queryset=teams, required=False, label=gettext_lazy("For team"),
            empty_label=(gettext_lazy("— no team: it counts against no quota —") if admin
                         else gettext_lazy("— choose —")),
            help_text=gettext_lazy("Whose quota the new volume counts against; it belongs to that team."))
        # Someone in one team (that may use the pool, when it is known) is not asked. As they may use the pool the
        # volume goes into (the form's own checks), that team may: charge_to needs no query to know it.
        self.sole_team = only[0] if not admin and len(only := list(teams[:2])) == 1 else None
        if self.sole_team is not None:
            field.widget, field.initial = forms.HiddenInput(), self.sole_team.pk
        self.fields["team"] = field

    def charge_to(self, pool: StoragePool, *, count: int, capacity: int, allocation: int = 0) -> None:
        """Whose the new volume is (the team field, or the user's one team that may use pool) and whether it
        fits that team's quota; form errors otherwise."""
        if self.sole_team is not None:  # the field offered it alone, and validated what was posted
            charge_form(self, Charge(self.sole_team, pool, count, capacity, allocation))
            return
        team, candidates = self.cleaned_data.get("team"), access.charge_teams(self.user, pool)
        if team is not None and not candidates.filter(pk=team.pk).exists():
            self.add_error("team", _("Team %(team)s may not use pool %(pool)s.") % {"team": team.name,
                                                                                  "pool": pool.name})
            return
        if team is None and not is_admin(self.user):
            found = list(candidates[:2])
            if len(found) != 1:
                self.add_error("team", _("Choose the team whose quota the new volume counts against."))
                return
            team = found[0]
        charge_form(self, Charge(team, pool, count, capacity, allocation))


def charge_form(form: forms.Form, charge: Charge) -> None:
    """The form's charge (form.charge, what its launch holds), or the form's error when it does not fit."""
    form.charge = charge
    try:
        charge.check()
    except QuotaExceeded as exc:
        form.add_error(None, str(exc))


class VolumeTeamForm(forms.Form):
    """An admin says whose a volume is (a volume made before quotas held for every volume, or one whose job's
    sync missed it): a team that may use its pool, or none. Admins are trusted with storage: no quota check."""

    team = forms.ModelChoiceField(queryset=None, required=False, label=gettext_lazy("Team"),
                                  empty_label=gettext_lazy("— no team: it counts against no quota —"))

    def __init__(self, *args, volume: Volume, user, **kwargs) -> None:
        super().__init__(*args, initial={"team": volume.team_id}, **kwargs)
        self.fields["team"].queryset = access.charge_teams(user, volume.pool)
