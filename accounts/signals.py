"""What happens to accounts, for the audit log: audit/apps.py connects to it (accounts sits below audit in the import
order and never imports it).

account_event is sent (by the account's model class) with request=, actor= (who did it), account= (whose account),
action= ("password.change", "account.create", "account.password_reset", "account.deactivate",
"account.reactivate") and detail= (a dict; never a password)."""

from __future__ import annotations

from django.dispatch import Signal

account_event = Signal()
