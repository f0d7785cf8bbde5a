"""The periodic task (beat: CELERY_BEAT_SCHEDULE "history-downsample"): roll up, expire, forecast."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .downsample import downsample as roll_up_all
from .watch import refresh_forecasts


@shared_task(name="history.tasks.downsample", ignore_result=True)
def downsample() -> dict:
    now = timezone.now()
    report = roll_up_all(now)
    entered = refresh_forecasts(now)
    return {"hours_made": report.hours_made, "days_made": report.days_made, "expired": report.expired,
            "pools_entering_horizon": entered}
