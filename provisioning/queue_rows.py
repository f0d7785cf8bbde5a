"""The approval queue's rows, their sentences made in Python.

Each row said what approving would do in eight {% blocktranslate %} tags, a third of the page's time (30 ms of
CPU at 50 rows). Here each sentence is the same msgid, translated once per row with gettext or ngettext; the
values are escaped HTML (sizes carry their exact bytes in a tooltip), the translation itself is trusted, as
{% blocktranslate %} trusts it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.template import engines
from django.template.defaultfilters import floatformat
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

from .models import ProvisioningRequest
from .quota import Impact


@functools.cache
def _builtin_filter(name: str):
    """A filter of the templates' builtins (size: binary units, exact bytes on hover; since: how long ago). Found
    as a template finds it: apps reach the project shell through Django, never by import."""
    return next(library.filters[name] for library in engines["django"].engine.template_builtins
                if name in library.filters)


def size(value: int | None) -> SafeString:
    return _builtin_filter("size")(value)


def _sentence(message: str, **values: object) -> SafeString:
    """message % values, as {% blocktranslate %} fills it: each value escaped, the sentence itself trusted."""
    return mark_safe(message % {name: conditional_escape(value) for name, value in values.items()})  # noqa: S308


@dataclass(frozen=True)
class QueueRow:
    req: ProvisioningRequest
    impact: Impact
    own: bool  # the approver's own request: another approver decides

    @property
    def select_label(self) -> str:
        return gettext("Select request #%(pk)s") % {"pk": self.req.pk}

    @property
    def requested_by(self) -> str:
        if self.req.requested_by is None:
            return gettext("by a removed user")
        return gettext("by %(user)s") % {"user": self.req.requested_by}

    @property
    def on_host(self) -> str:
        return gettext("on %(host)s") % {"host": self.req.pool.host.name}

    @property
    def pool_after(self) -> SafeString:
        pool, impact = self.req.pool, self.impact
        values = {"after": size(impact.allocation_after), "capacity": size(pool.capacity),
                  "free": size(impact.available_after)}
        if pool.reserve_bytes:
            return _sentence(gettext("allocation %(after)s of %(capacity)s, %(free)s free (reserve %(reserve)s)"),
                             reserve=size(pool.reserve_bytes), **values)
        return _sentence(gettext("allocation %(after)s of %(capacity)s, %(free)s free"), **values)

    @property
    def overcommit(self) -> str:
        impact = self.impact
        after = "—" if impact.overcommit_after is None else f"{floatformat(impact.overcommit_after, 2)}×"
        if impact.overcommit_limit is None:
            limit = gettext("(no limit)")
        else:
            limit = gettext("of at most %(max)s×") % {"max": floatformat(impact.overcommit_limit, 2)}
        return f"{gettext('overcommit')} {after} {limit}"

    @property
    def quota_bytes(self) -> SafeString:
        impact = self.impact
        if impact.quota_bytes_max is None:
            return format_html("{} {}", size(impact.quota_bytes_after), gettext("(no limit)"))
        return _sentence(gettext("%(n)s of %(max)s"), n=size(impact.quota_bytes_after),
                         max=size(impact.quota_bytes_max))

    @property
    def quota_count(self) -> str:
        n, most = self.impact.quota_count_after, self.impact.quota_count_max
        if most is None:
            return ngettext("%(n)s volume (no limit)", "%(n)s volumes (no limit)", n) % {"n": n}
        return ngettext("%(n)s volume of %(max)s", "%(n)s volumes of %(max)s", n) % {"n": n, "max": most}

    @property
    def filed(self) -> str:
        return gettext("%(since)s ago") % {"since": _builtin_filter("since")(self.req.created_at)}

    @property
    def refusal(self) -> str:
        if not self.impact.refusal:
            return ""
        return gettext("Would be refused now: %(reason)s") % {"reason": self.impact.refusal}
