from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    label = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from django.contrib.auth import get_user_model, signals
        from django.db.models.signals import m2m_changed, post_save, pre_save

        from accounts.signals import account_event

        from . import logins

        signals.user_logged_in.connect(logins.logged_in, dispatch_uid="audit.logged_in")
        signals.user_login_failed.connect(logins.login_failed, dispatch_uid="audit.login_failed")
        signals.user_logged_out.connect(logins.logged_out, dispatch_uid="audit.logged_out")
        account_event.connect(logins.account_event, dispatch_uid="audit.account_event")
        accounts = get_user_model()
        pre_save.connect(logins.flags_before, sender=accounts, dispatch_uid="audit.flags_before")
        post_save.connect(logins.flags_changed, sender=accounts, dispatch_uid="audit.flags_changed")
        m2m_changed.connect(logins.groups_changed, sender=accounts.groups.through, dispatch_uid="audit.groups")
