"""Provisioning requests: a member asks for a volume, an approver (or the team's auto-approval) says yes, a job
makes it.

The request's life is a state machine (django-fsm-2): the field is protected, so a state changes only through
the transition methods below, and ConcurrentTransitionMixin refuses to save a request whose state changed in
the database since it was read (two reviewers at once: one wins, the other's save raises ConcurrentTransition).

    pending ─approve─▶ approved ─start─▶ provisioning ─succeed─▶ ready
       │ ╰─reject─▶ rejected                 ▲     ╰─fail─▶ failed
       ╰─withdraw─▶ withdrawn                ╰────retry──────╯
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from virtstorage.virt.units import binary_size

PREALLOCATION_CHOICES = [
    ("off", gettext_lazy("thin")),
    ("metadata", gettext_lazy("qcow2 metadata preallocated")),
    ("full", gettext_lazy("preallocated")),
]


class RequestQuerySet(models.QuerySet):
    def open(self) -> RequestQuerySet:
        """Requests that still hold their name in the pool: waiting, approved or being made."""
        return self.filter(state__in=ProvisioningRequest.OPEN_STATES)

    def reserving(self) -> RequestQuerySet:
        """Approved requests whose volume is not in the inventory yet: their share is reserved."""
        return self.filter(state__in=ProvisioningRequest.RESERVING_STATES)


class ProvisioningRequest(ConcurrentTransitionMixin, models.Model):
    class State(models.TextChoices):
        PENDING = "pending", pgettext_lazy("request state", "Pending approval")
        APPROVED = "approved", pgettext_lazy("request state", "Approved")
        PROVISIONING = "provisioning", pgettext_lazy("request state", "Provisioning")
        READY = "ready", pgettext_lazy("request state", "Ready")
        FAILED = "failed", pgettext_lazy("request state", "Failed")
        REJECTED = "rejected", pgettext_lazy("request state", "Rejected")
        WITHDRAWN = "withdrawn", pgettext_lazy("request state", "Withdrawn")

    OPEN_STATES = (State.PENDING, State.APPROVED, State.PROVISIONING)
    RESERVING_STATES = (State.APPROVED, State.PROVISIONING)

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="provisioning_requests")
    pool = models.ForeignKey("pools.StoragePool", on_delete=models.CASCADE, related_name="provisioning_requests")
    name = models.CharField(max_length=255)
    capacity = models.BigIntegerField(gettext_lazy("virtual size"))
    format = models.CharField(max_length=16, default="qcow2")
    preallocation = models.CharField(max_length=16, choices=PREALLOCATION_CHOICES, default="off")
    backing = models.ForeignKey("volumes.Volume", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", help_text=gettext_lazy("Base of a qcow2 overlay."))
    # What the backing volume was when asked for: a backing row that disappears must not make a plain volume.
    backing_path = models.CharField(max_length=4096, blank=True)
    purpose = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                     related_name="provisioning_requests")
    state = FSMField(default=State.PENDING, choices=State.choices, protected=True, db_index=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", help_text=gettext_lazy("Empty for an automatic approval."))
    review_comment = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    volume = models.ForeignKey("volumes.Volume", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="provisioning_requests")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["pool", "state"]), models.Index(fields=["team", "pool", "state"])]

    def __str__(self) -> str:
        return (_("request #%(pk)s: %(name)s (%(size)s) in pool %(pool)s")
                % {"pk": self.pk, "name": self.name, "size": binary_size(self.capacity), "pool": self.pool.name})

    def get_absolute_url(self) -> str:
        return reverse("requests:detail", args=[self.pk])

    @property
    def allocation(self) -> int:
        """The disk space the volume takes at once: all of it when preallocated, else (about) nothing."""
        return self.capacity if self.preallocation == "full" else 0

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def badge(self) -> str:
        """The CSS class of the state's badge."""
        return {"pending": "warn", "approved": "info", "provisioning": "info", "ready": "ok", "failed": "danger",
                "rejected": "danger", "withdrawn": "muted"}.get(self.state, "")

    @property
    def provisioning_label(self) -> str:
        return dict(PREALLOCATION_CHOICES).get(self.preallocation, self.preallocation)

    # -- transitions: each only moves the state and the fields that go with it; services save and log --

    @transition(field=state, source=State.PENDING, target=State.APPROVED)
    def approve(self, reviewer, comment: str = "") -> None:
        self._reviewed(reviewer, comment)

    @transition(field=state, source=State.PENDING, target=State.REJECTED)
    def reject(self, reviewer, comment: str = "") -> None:
        self._reviewed(reviewer, comment)

    @transition(field=state, source=State.PENDING, target=State.WITHDRAWN)
    def withdraw(self) -> None:
        pass

    @transition(field=state, source=State.PENDING, target=State.PENDING)
    def edit(self) -> None:
        """A pending request changed by its requester: it waits for approval as before."""

    @transition(field=state, source=[State.APPROVED, State.FAILED], target=State.PROVISIONING)
    def start(self, job) -> None:
        """The create job is launched (after an approval, or again after a failure: a retry)."""
        self.job = job
        self.error = ""

    @transition(field=state, source=State.PROVISIONING, target=State.READY)
    def succeed(self, volume) -> None:
        self.volume = volume

    @transition(field=state, source=State.PROVISIONING, target=State.FAILED)
    def fail(self, error: str) -> None:
        self.error = error or _("The job failed without a reason.")

    def _reviewed(self, reviewer, comment: str) -> None:
        self.reviewer = reviewer
        self.review_comment = comment
        self.reviewed_at = timezone.now()


class RequestEvent(models.Model):
    """One step of a request's timeline; actor empty when the system did it."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted", pgettext_lazy("request event", "Submitted")
        EDITED = "edited", pgettext_lazy("request event", "Edited")
        APPROVED = "approved", pgettext_lazy("request event", "Approved")
        AUTO_APPROVED = "auto-approved", pgettext_lazy("request event", "Approved automatically")
        REJECTED = "rejected", pgettext_lazy("request event", "Rejected")
        WITHDRAWN = "withdrawn", pgettext_lazy("request event", "Withdrawn")
        PROVISIONING = "provisioning", pgettext_lazy("request event", "Provisioning started")
        READY = "ready", pgettext_lazy("request event", "Ready")
        FAILED = "failed", pgettext_lazy("request event", "Failed")
        RETRIED = "retried", pgettext_lazy("request event", "Retried")

    request = models.ForeignKey(ProvisioningRequest, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        if self.actor is None:
            return _("%(kind)s by the system") % {"kind": self.get_kind_display()}
        return _("%(kind)s by %(actor)s") % {"kind": self.get_kind_display(), "actor": self.actor}
