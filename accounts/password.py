"""A user changes their own password (Django's view, the site's page); admins reset others' in the Django admin.

``password_changed`` is sent after the change, for the audit log (audit/apps.py connects it): accounts sits
below audit in the import order and never imports it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.dispatch import Signal
from django.http import HttpResponse
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

password_changed = Signal()  # sent with request= and user=


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("dashboard")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)  # saves it, and keeps this session logged in (others end)
        password_changed.send(sender=self.__class__, request=self.request, user=form.user)
        messages.success(self.request, _("Your password was changed. Other sessions of your account have ended."))
        return response
