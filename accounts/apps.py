from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    label = "accounts"
    verbose_name = _("Accounts and roles")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.utils.translation import gettext, ngettext

        from virtstorage.virt.text import use_translator

        from .language import remember_on_login

        user_logged_in.connect(remember_on_login, dispatch_uid="accounts.remember_language")
        use_translator(gettext, ngettext)  # the libvirt layer's messages in the active language (virt/text.py)
