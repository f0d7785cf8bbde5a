from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    label = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from django.contrib.auth import signals

        from accounts.signals import account_event

        from . import logins

        signals.user_logged_in.connect(logins.logged_in, dispatch_uid="audit.logged_in")
        signals.user_login_failed.connect(logins.login_failed, dispatch_uid="audit.login_failed")
        signals.user_logged_out.connect(logins.logged_out, dispatch_uid="audit.logged_out")
        account_event.connect(logins.account_event, dispatch_uid="audit.account_event")
