"""The charts' data: a pool's, a host's (its pools stacked) and a team's (usage against quota), read from the
samples of every resolution in the range and thinned to one point per display step (the last sample in it: the
same rule as the rolled-up rows, so a point is always a real sample's value; the table shows the step's peak).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils.translation import gettext_lazy as _

from .models import PoolSample, Resolution, TeamSample
from .svg import Frame, Line, Rule, place


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    step: timedelta  # one point per step
    resolution: str  # the rows it reads (plus finer ones newer than the newest of those)


RANGES = [Range("24h", _("24 h"), timedelta(hours=24), timedelta(minutes=15), Resolution.RAW),
          Range("7d", _("7 d"), timedelta(days=7), timedelta(hours=1), Resolution.HOUR),
          Range("90d", _("90 d"), timedelta(days=90), timedelta(days=1), Resolution.DAY)]
FINER = {Resolution.RAW: [], Resolution.HOUR: [Resolution.RAW], Resolution.DAY: [Resolution.HOUR, Resolution.RAW]}
RANGE_PARAM = "range"


def range_of(key: str | None) -> Range:
    return next((r for r in RANGES if r.key == key), RANGES[0])


@dataclass
class Chart:
    dom_id: str  # the figure's, unlike the section's around it (history_tags: the range links select that)
    title: str
    description: str
    frame: Frame
    columns: list[tuple[str, str]]  # (label, kind: "size" or "count")
    rows: list[tuple[datetime, list[int | None]]]
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> list[tuple[datetime, list[tuple[str, int | None]]]]:
        """The rows with each value's kind, for the template's table."""
        kinds = [kind for _label, kind in self.columns]
        return [(at, list(zip(kinds, values, strict=True))) for at, values in self.rows]


EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def step_index(at: datetime, step: timedelta) -> int:
    """Which display step a time falls in: steps are whole quarter hours, hours or days of UTC, whatever the
    moment the page is drawn, so a point stays where it was from one page load to the next."""
    return (at - EPOCH) // step


def read(rows, span: Range, start: datetime, now: datetime, columns: list[str], keys: list[int] | None = None):
    """(at, *columns) of the samples in (start, now], oldest first: the range's own resolution, then the finer
    rows newer than the newest of those (the hours and minutes not rolled up yet), per series. keys: the series
    (columns[0] names them) when rows hold several, None for one."""
    fields = ["at", *columns]
    found = list(rows.filter(resolution=span.resolution, at__gt=start, at__lte=now).values_list(*fields))
    for finer in FINER[span.resolution]:
        newest: dict = {}
        for row in found:
            series = row[1] if keys is not None else None
            newest[series] = max(newest.get(series, start), row[0])
        expected = keys if keys is not None else [None]
        lowest = min((newest.get(series, start) for series in expected), default=start)
        more = rows.filter(resolution=finer, at__gt=lowest, at__lte=now).values_list(*fields)
        found += [row for row in more if row[0] > newest.get(row[1] if keys is not None else None, start)]
    found.sort(key=lambda row: row[0])
    return found


def _last_per_step(rows, start: datetime, step: timedelta) -> dict[int, tuple]:
    """{step index: the last row in it}; rows are (at, ...) oldest first."""
    last = {}
    for row in rows:
        last[step_index(row[0], step)] = row
    return last


def _peak_per_step(rows, start: datetime, step: timedelta, column: int) -> dict[int, int]:
    peaks: dict[int, int] = {}
    for row in rows:
        index = step_index(row[0], step)
        peaks[index] = max(peaks.get(index, row[column]), row[column])
    return peaks


def pool_chart(pool, span: Range, now: datetime) -> Chart:
    start = now - span.span
    rows = read(PoolSample.objects.filter(pool=pool), span, start, now,
                ["allocation", "virtual_total", "capacity", "available", "volume_count", "allocation_max"])
    shown = sorted(_last_per_step(rows, start, span.step).items())
    peaks = _peak_per_step(rows, start, span.step, 6)
    points = [row for index, row in shown]
    lines = [Line("allocation", _("Allocation"), "c0", [(r[0], r[1]) for r in points]),
             Line("virtual", _("Sum of virtual sizes"), "c1", [(r[0], r[2]) for r in points]),
             Line("capacity", _("Capacity"), "c2", [(r[0], r[3]) for r in points])]
    rules = []
    if pool.max_overcommit is not None and pool.capacity:
        rules.append(Rule(_("Policy limit (%(factor)s× capacity)") % {"factor": pool.max_overcommit}, "limit",
                          int(pool.capacity * float(pool.max_overcommit))))
    frame = place(Frame(start, now, lines, rules))
    return Chart(
        f"history-pool-{pool.pk}-chart", _("Pool %(name)s over %(span)s") % {"name": pool.name, "span": span.label},
        _("Allocation and the sum of virtual sizes against capacity and the policy limit, %(n)s points.")
        % {"n": len(points)}, frame,
        [(_("Allocation"), "size"), (_("Peak allocation"), "size"), (_("Virtual sizes"), "size"),
         (_("Capacity"), "size"), (_("Available"), "size"), (_("Volumes"), "count")],
        [(r[0], [r[1], peaks[index], r[2], r[3], r[4], r[5]]) for index, r in shown])


def host_chart(host, pools, span: Range, now: datetime) -> Chart:
    """The pools' allocations stacked, one band per pool (pools: those the user may see)."""
    start = now - span.span
    pools = list(pools)
    rows = read(PoolSample.objects.filter(pool__in=pools), span, start, now, ["pool_id", "allocation"],
                keys=[pool.pk for pool in pools])
    per_step: dict[int, dict[int, tuple[datetime, int]]] = {}
    for at, pool_id, allocation in rows:
        per_step.setdefault(step_index(at, span.step), {})[pool_id] = (at, allocation)
    steps = sorted(per_step)
    current = {pool.pk: 0 for pool in pools}
    table, stacked = [], {pool.pk: [] for pool in pools}
    for index in steps:
        at = max(when for when, value in per_step[index].values())
        for pool_id, (_when, allocation) in per_step[index].items():
            current[pool_id] = allocation  # a pool without a sample in this step keeps its last value
        below = 0
        for pool in pools:
            below += current[pool.pk]
            stacked[pool.pk].append((at, below))
        table.append((at, [current[pool.pk] for pool in pools]))
    lines, previous = [], [(at, 0) for at, values in table]
    for number, pool in enumerate(pools):
        lines.append(Line(f"pool-{pool.pk}", pool.name, f"c{number % 8}", stacked[pool.pk], area_below=previous))
        previous = stacked[pool.pk]
    frame = place(Frame(start, now, lines))
    return Chart(
        f"history-host-{host.pk}-chart", _("Pools of %(name)s over %(span)s") % {"name": host.name, "span": span.label},
        _("Each pool's allocation, stacked, %(n)s points.") % {"n": len(table)}, frame,
        [(pool.name, "size") for pool in pools], table)


def team_charts(team, grants, span: Range, now: datetime) -> list[Chart]:
    """One chart per grant: what counts against the quota there, and the quota."""
    start = now - span.span
    grants = list(grants)
    pool_ids = [grant.pool_id for grant in grants]
    rows = read(TeamSample.objects.filter(team=team, pool__in=pool_ids), span, start, now,
                ["pool_id", "virtual_bytes", "volume_count", "virtual_bytes_max"], keys=pool_ids)
    by_pool: dict[int, list[tuple]] = {}
    for at, pool_id, virtual, count, peak in rows:
        by_pool.setdefault(pool_id, []).append((at, virtual, count, peak))
    charts = []
    for grant in grants:
        series = by_pool.get(grant.pool_id, [])
        shown = sorted(_last_per_step(series, start, span.step).items())
        peaks = _peak_per_step(series, start, span.step, 3)
        rules = [] if grant.max_virtual_bytes is None else [Rule(_("Quota"), "limit", grant.max_virtual_bytes)]
        line = Line(f"team-pool-{grant.pool_id}", _("Counts against the quota"), "c0",
                    [(r[0], r[1]) for index, r in shown])
        charts.append(Chart(
            f"history-team-{team.pk}-pool-{grant.pool_id}",
            _("Team %(team)s in pool %(pool)s over %(span)s") % {"team": team.name, "pool": grant.pool.name,
                                                                  "span": span.label},
            _("Virtual sizes counting against the team's quota, %(n)s points.") % {"n": len(shown)},
            place(Frame(start, now, [line], rules)),
            [(_("Virtual sizes"), "size"), (_("Peak"), "size"), (_("Volumes"), "count")],
            [(r[0], [r[1], peaks[index], r[2]]) for index, r in shown]))
    return charts
