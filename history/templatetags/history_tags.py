"""The history on the pages: ``{% load history_tags %}`` then one tag each.

- ``{% pool_history pool %}``: the pool's chart and forecast (pool page);
- ``{% host_history host %}``: the host's pools stacked, those the user may see (host page);
- ``{% team_history team %}``: the team's usage against quota, per grant (team page);
- ``{% filling_pools %}``: the dashboard's warning for visible pools filling within FORECAST_HORIZON_DAYS.

The range comes from the page's ?range= (24h, 7d, 90d), so the switch is a plain link that works without
JavaScript; with htmx it swaps only the chart (hx-select of the same page).
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils import timezone

from pools.models import StoragePool
from pools.quotas import grants_of

from ..charts import RANGE_PARAM, RANGES, host_chart, pool_chart, range_of, team_charts
from ..models import PoolForecast

register = template.Library()


def _range_links(request, current) -> list[dict]:
    links = []
    for span in RANGES:
        query = request.GET.copy()
        query[RANGE_PARAM] = span.key
        links.append({"label": span.label, "query": query.urlencode(), "active": span.key == current.key})
    return links


def _context(context, dom_id: str, charts: list, **extra) -> dict:
    request = context["request"]
    span = range_of(request.GET.get(RANGE_PARAM))
    return {"dom_id": dom_id, "charts": charts, "links": _range_links(request, span), "span": span, **extra}


@register.inclusion_tag("history/_history.html", takes_context=True)
def pool_history(context, pool: StoragePool) -> dict:
    span = range_of(context["request"].GET.get(RANGE_PARAM))
    chart = pool_chart(pool, span, timezone.now())
    forecast = PoolForecast.objects.filter(pool=pool).first()
    rate = None if forecast is None or forecast.bytes_per_day is None else round(abs(forecast.bytes_per_day))
    return _context(context, f"history-pool-{pool.pk}", [chart], forecast=forecast, pool=pool,
                    days=forecast and forecast.days, rate=rate)


@register.inclusion_tag("history/_history.html", takes_context=True)
def host_history(context, host) -> dict:
    span = range_of(context["request"].GET.get(RANGE_PARAM))
    pools = StoragePool.objects.visible_to(context["request"].user).filter(host=host).only("pk", "name")
    return _context(context, f"history-host-{host.pk}", [host_chart(host, pools, span, timezone.now())])


@register.inclusion_tag("history/_history.html", takes_context=True)
def team_history(context, team) -> dict:
    span = range_of(context["request"].GET.get(RANGE_PARAM))
    charts = team_charts(team, grants_of(team), span, timezone.now())
    return _context(context, f"history-team-{team.pk}", charts, team=team)


@register.inclusion_tag("history/_filling_pools.html", takes_context=True)
def filling_pools(context) -> dict:
    horizon = settings.FORECAST_HORIZON_DAYS
    visible = StoragePool.objects.visible_to(context["request"].user)
    rows = (PoolForecast.objects.filter(days_left__lte=horizon, pool__in=visible)
            .select_related("pool__host").order_by("days_left"))
    return {"forecasts": list(rows), "horizon": round(horizon)}
