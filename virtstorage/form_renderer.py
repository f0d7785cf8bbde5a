"""The form renderer: Jinja2 for Django's own form and widget templates, the Django engine for the rest.

Django's Jinja2 renderer is fast (the Django engine took ~0.3 ms per <option>, a form page a third of its
time in its form) but finds only templates written for Jinja2: Django's forms ship both kinds, the admin and
auth ship Django templates alone (a related-object wrapper, the password hash of a user's change page).
Those, and any other widget without a Jinja2 version, render through the Django engine."""

from __future__ import annotations

from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.template import TemplateDoesNotExist
from django.utils.functional import cached_property


class FormRenderer(BaseRenderer):
    @cached_property
    def _jinja2(self) -> Jinja2:
        return Jinja2()

    @cached_property
    def _django(self) -> DjangoTemplates:
        return DjangoTemplates()

    def get_template(self, template_name: str):
        try:
            return self._jinja2.get_template(template_name)
        except TemplateDoesNotExist:
            return self._django.get_template(template_name)
