"""The one way other apps tell users something: ``notify(users, text, url="", subject=None)``.

A row per active user (the bell in the page header counts them) and, once the transaction commits, one
Celery task that e-mails the users who have an address. No mail is ever sent inside the request. A text (or
subject) given as a function is written once per recipient, in the recipient's language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import translation

from accounts.models import Preferences

from .links import is_local
from .models import Notification
from .tasks import send_emails

logger = logging.getLogger(__name__)
Text = str | Callable[[], str]


def notify(users: AbstractBaseUser | Iterable[AbstractBaseUser], text: Text, url: str = "",
           subject: Text | None = None, topic: str = "") -> list[Notification]:
    """Notify each active user once (duplicates and inactive accounts are skipped); returns the new rows.

    text: the message, or a function that writes it (``lambda: _("…") % {…}``): it is then called for each
    recipient in the language they chose (without a choice: the language active now).
    url: a path in this site ("/jobs/12/"), or "" for none; anything else raises ValueError.
    subject: the e-mail's subject (text or function, as text); by default the text's first line.
    topic: what the message asks of its readers, for settle() once that no longer needs them."""
    if url and not is_local(url):
        raise ValueError(f"A notification links only to a path in this site, not {url!r}.")
    if isinstance(users, AbstractBaseUser):
        users = [users]
    recipients = list({user.pk: user for user in users if user.is_active}.values())
    if not recipients:
        return []
    chosen = dict(Preferences.objects.filter(user__in=recipients).exclude(language="")
                  .values_list("user_id", "language"))
    written = {user.pk: _written(text, subject, chosen.get(user.pk)) for user in recipients}
    if any(not body.strip() for body, _subject in written.values()):
        raise ValueError("A notification needs a text.")
    with transaction.atomic():
        rows = Notification.objects.bulk_create(
            [Notification(user=user, text=written[user.pk][0], url=url, topic=topic) for user in recipients])
        subjects = {str(row.pk): written[row.user_id][1] for row in rows if written[row.user_id][1] is not None}
        transaction.on_commit(lambda: _queue_emails([row.pk for row in rows], subjects))
    return rows


def settle(topic: str) -> int:
    """Mark read every unread notification of this topic: what it asked of its readers is done (a request that
    waited for an approver was decided or withdrawn), so the bell stops counting it. Returns how many."""
    return Notification.objects.filter(topic=topic).mark_read() if topic else 0


def _written(text: Text, subject: Text | None, language: str | None) -> tuple[str, str | None]:
    """The text and subject for one recipient, in their language when they chose one."""
    with translation.override(language or translation.get_language()):
        return (text() if callable(text) else text), (subject() if callable(subject) else subject)


def _queue_emails(ids: list[int], subjects: dict[str, str]) -> None:
    """After the commit: a broker that is down loses the e-mails, never the request (the rows are saved)."""
    try:
        send_emails.apply_async(args=[ids], kwargs={"subjects": subjects}, retry=False)
    except Exception as exc:  # kombu raises several types for a dead broker
        logger.error("Could not queue the e-mails for notifications %s: %s", ids, exc)
