from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    label = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from django.contrib.auth import signals

        from accounts.password import password_changed

        from . import logins

        signals.user_logged_in.connect(logins.logged_in, dispatch_uid="audit.logged_in")
        signals.user_login_failed.connect(logins.login_failed, dispatch_uid="audit.login_failed")
        signals.user_logged_out.connect(logins.logged_out, dispatch_uid="audit.logged_out")
        password_changed.connect(logins.password_changed, dispatch_uid="audit.password_changed")
