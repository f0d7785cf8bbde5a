"""The one way other apps tell users something: ``notify(users, text, url="", subject=None)``.

A row per active user (the bell in the page header counts them) and, once the transaction commits, one
Celery task that e-mails the users who have an address. No mail is ever sent inside the request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .links import is_local
from .models import Notification
from .tasks import send_emails

logger = logging.getLogger(__name__)


def notify(users: AbstractBaseUser | Iterable[AbstractBaseUser], text: str, url: str = "",
           subject: str | None = None) -> list[Notification]:
    """Notify each active user once (duplicates and inactive accounts are skipped); returns the new rows.

    url: a path in this site ("/jobs/12/"), or "" for none; anything else raises ValueError.
    subject: the e-mail's subject; by default the text's first line."""
    if url and not is_local(url):
        raise ValueError(f"A notification links only to a path in this site, not {url!r}.")
    if not text.strip():
        raise ValueError("A notification needs a text.")
    if isinstance(users, AbstractBaseUser):
        users = [users]
    recipients = list({user.pk: user for user in users if user.is_active}.values())
    if not recipients:
        return []
    with transaction.atomic():
        rows = Notification.objects.bulk_create(
            [Notification(user=user, text=text, url=url) for user in recipients])
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _queue_emails(ids, subject))
    return rows


def _queue_emails(ids: list[int], subject: str | None) -> None:
    """After the commit: a broker that is down loses the e-mails, never the request (the rows are saved)."""
    try:
        send_emails.apply_async(args=[ids], kwargs={"subject": subject}, retry=False)
    except Exception as exc:  # kombu raises several types for a dead broker
        logger.error("Could not queue the e-mails for notifications %s: %s", ids, exc)
