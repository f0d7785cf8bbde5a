"""E-mail for notifications, sent by a worker through Django's mail settings (EMAIL_*).

A mail server that is down or refuses a message is logged; the task neither raises nor retries, so the
worker goes on and the notifications stay in the app.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core import mail

from .models import Notification

logger = logging.getLogger(__name__)
SUBJECT_PREFIX = "[virtstorage] "
SUBJECT_MAX = 120


def subject_for(text: str, subject: str | None = None) -> str:
    """One header line: the given subject or the text's first line, shortened."""
    line = " ".join((subject or text).split())
    if len(line) > SUBJECT_MAX:
        line = line[:SUBJECT_MAX - 1].rstrip() + "…"
    return SUBJECT_PREFIX + line


def _message(row: Notification, subject: str | None) -> mail.EmailMessage:
    body = row.text + (f"\n\n{row.url}\n" if row.url else "\n")
    return mail.EmailMessage(subject_for(row.text, subject), body, to=[row.user.email])


@shared_task(name="notifications.tasks.send_emails", ignore_result=True)
def send_emails(notification_ids: list[int], subject: str | None = None, subjects: dict[str, str] | None = None) -> int:
    """One message per notification whose active user has an e-mail address; returns how many went out.
    subjects: each notification's own subject (by id, in its recipient's language); subject: one for all (the
    messages queued before subjects were per recipient)."""
    rows = (Notification.objects.filter(pk__in=notification_ids, user__is_active=True)
            .exclude(user__email="").select_related("user").order_by("pk"))
    messages = [_message(row, (subjects or {}).get(str(row.pk), subject)) for row in rows]
    if not messages:
        return 0
    sent = 0
    try:
        with mail.get_connection() as connection:
            for message in messages:
                try:
                    sent += connection.send_messages([message]) or 0
                except Exception as exc:  # refused recipient, dropped connection…: the others still go
                    logger.error("Could not e-mail notification to %s: %s", message.to[0], exc)
    except Exception as exc:  # no server, bad login, bad backend: every message of this batch is lost
        logger.error("Could not send %d notification e-mail(s) through %s (%s:%s): %s", len(messages) - sent,
                     settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, exc)
    return sent
