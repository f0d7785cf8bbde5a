"""A user changes their own password (Django's view, the site's page); an admin gives anyone a new one on the
Accounts page (accounts/people.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

from .signals import account_event


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("dashboard")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)  # saves it, and keeps this session logged in (others end)
        account_event.send(sender=type(form.user), request=self.request, actor=form.user, account=form.user,
                           action="password.change", detail={})
        messages.success(self.request, _("Your password was changed. Other sessions of your account have ended."))
        return response
