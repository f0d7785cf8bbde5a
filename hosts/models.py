from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts import access
from accounts.roles import is_admin
from jobs.rows import hold
from virtstorage.virt.pools import PoolTypeSupport


class HostRemoved(Exception):
    """The host was removed from the app while work on it ran: its results have nowhere to go."""


class HostQuerySet(models.QuerySet):
    def visible_to(self, user) -> HostQuerySet:
        """Hosts with a pool the user may see (every host for an admin)."""
        ids = access.pool_ids(user)
        return self if ids is None else self.filter(pools__in=ids).distinct()


class Host(models.Model):
    """A libvirt host the team manages, by connection URI."""

    class Status(models.TextChoices):
        UNKNOWN = "unknown", _("Not checked yet")
        ONLINE = "online", pgettext_lazy("host status", "Online")
        UNREACHABLE = "unreachable", pgettext_lazy("host status", "Unreachable")

    name = models.CharField(max_length=100, unique=True)
    uri = models.CharField(_("libvirt URI"), max_length=500, unique=True)
    description = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True, help_text=_("Disabled hosts are neither synced nor changed."))
    disabled_reason = models.TextField(
        blank=True, help_text=_("Why virtstorage disabled the host itself: a URI it may not open. "
                                "Saving the host with an allowed URI clears it."))
    direct_io = models.BooleanField(
        _("direct file I/O"), default=True,
        help_text=_("When this host is the machine the app runs on, uploads and downloads read and write "
                    "volume files in place instead of copying every byte through libvirtd (several times "
                    "faster). Used only for a file the app may open and libvirt vouches for; otherwise, and "
                    "for remote hosts, libvirt's streams are used."))
    queue = models.CharField(
        _("Celery queue"), max_length=100, blank=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_.-]*$", _("Letters, digits, dot, dash and underscore only."))],
        help_text=_("Empty: the shared queue. A name: this host's jobs (and uploads, on NAME-transfers) go to "
                    "that queue only, for a worker started beside the host with --queues=NAME,NAME-transfers."))
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text=_("Last time libvirtd answered."))
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Facts from the last successful check
    hostname = models.CharField(max_length=255, blank=True)
    libvirt_uuid = models.CharField(_("libvirt host UUID"), max_length=36, blank=True,
                                    help_text=_("As the daemon reports it: two hosts with one UUID are one libvirt."))
    libvirt_version = models.CharField(max_length=32, blank=True)
    hypervisor = models.CharField(max_length=64, blank=True)
    hypervisor_version = models.CharField(max_length=32, blank=True)
    cpu_model = models.CharField(max_length=64, blank=True)
    cpus = models.PositiveIntegerField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    # The storage pool types libvirt supports, recorded by each check and sync so that no page asks:
    # {type: {"supported": bool, "source_formats": [...], "default_format": str}}; None until recorded.
    pool_types = models.JSONField(null=True, blank=True)
    pool_types_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("hosts:detail", args=[self.pk])

    def same_libvirt(self) -> models.QuerySet[Host]:
        """Other hosts registered for the libvirt daemon this one reaches (another URI of it): its pools show
        twice, and a team granted a pool under both has two quotas on one pool."""
        if not self.libvirt_uuid:
            return Host.objects.none()
        return Host.objects.filter(libvirt_uuid=self.libvirt_uuid).exclude(pk=self.pk).order_by("name")

    def hold(self) -> None:
        """Keep this host in the app until the transaction ends, so that the rows written under it (pools, VMs,
        jobs) are not orphaned by a removal (hosts/operations.forget). HostRemoved when it is gone already."""
        if not hold(self):
            raise HostRemoved(_("%(host)s was removed from the app meanwhile; nothing of it was stored.")
                              % {"host": self.name})

    @property
    def is_online(self) -> bool:
        return self.status == self.Status.ONLINE

    def pool_type_support(self) -> dict[str, PoolTypeSupport] | None:
        """The pool types libvirt supported at pool_types_at, as the define form wants them; None if unknown."""
        if not isinstance(self.pool_types, dict):
            return None
        return {
            kind: PoolTypeSupport(kind, bool(found.get("supported")), tuple(found.get("source_formats") or ()),
                                  str(found.get("default_format") or ""))
            for kind, found in self.pool_types.items()
        }

    @staticmethod
    def pool_types_json(support: dict[str, PoolTypeSupport]) -> dict:
        """What pool_types holds for support (supported_pool_types' answer)."""
        return {kind: {"supported": s.supported, "source_formats": list(s.source_formats),
                       "default_format": s.default_format} for kind, s in support.items()}


class DomainQuerySet(models.QuerySet):
    def visible_to(self, user) -> DomainQuerySet:
        """The VMs the user may see: every VM for an admin or a member of a team that may use every pool;
        otherwise those one of their teams owns."""
        if access.pool_ids(user) is None:  # an admin, or a team with all_pools
            return self
        if not user.is_authenticated:
            return self.none()
        return self.filter(team__in=access.teams_of(user).values("team_id"))

    def changeable_by(self, user) -> DomainQuerySet:
        """The VMs whose disks the user may attach and detach: every VM for an admin or an operator of a team
        that may use every pool; otherwise those owned by a team the user is an operator of."""
        if is_admin(user):
            return self
        if not user.is_authenticated:
            return self.none()
        teams = access.teams_of(user).filter(role=access.OPERATOR)
        if teams.filter(team__all_pools=True).exists():
            return self
        return self.filter(team__in=teams.values("team_id"))


class Domain(models.Model):
    """A virtual machine defined (or running) on a host, as last seen by a sync.

    The sync updates the row in place, by UUID, so what the app adds (the owning team) survives it."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=255)
    uuid = models.CharField(max_length=36)
    state = models.CharField(max_length=32, blank=True, help_text=_("As virsh says it: running, shut off, paused..."))
    vcpus = models.PositiveIntegerField(default=0)
    memory_kib = models.BigIntegerField(default=0)
    persistent = models.BooleanField(default=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="domains",
        help_text=_("The team that owns the VM: its operators attach and detach disks. Set by an admin."))
    synced_at = models.DateTimeField(null=True, blank=True)

    objects = DomainQuerySet.as_manager()

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="unique_domain_uuid_per_host")]

    def __str__(self) -> str:
        return f"{self.name} on {self.host}" if self.host_id else self.name

    def get_absolute_url(self) -> str:
        return reverse("vms:detail", args=[self.pk])

    @property
    def memory_bytes(self) -> int:
        return self.memory_kib * 1024

    @property
    def is_active(self) -> bool:
        return self.state not in ("shut off", "")

    def may_change_disks(self, user) -> bool:
        """Whether the user may attach and detach this VM's disks (DomainQuerySet.changeable_by)."""
        return type(self).objects.changeable_by(user).filter(pk=self.pk).exists()


class DomainDisk(models.Model):
    """A disk of a VM defined on a host, as last seen by a sync: which volumes are in use.

    A disk names its storage by path (file or block device) or, in a started pool, by
    pool and volume name; both are kept so either way finds the volume. The sync replaces
    a host's disks at once; ``domain`` keeps the VM's name for the pages that list users.
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="domain_disks")
    machine = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="disks")
    domain = models.CharField(max_length=255)
    target = models.CharField(max_length=64, blank=True, help_text=_("The guest's device name, e.g. vda."))
    path = models.CharField(max_length=4096, blank=True, db_index=True)
    pool_name = models.CharField(max_length=255, blank=True)
    volume_name = models.CharField(max_length=255, blank=True)
    source_type = models.CharField(max_length=16, blank=True, help_text=_("file, block, volume, network, dir."))
    device = models.CharField(max_length=16, blank=True, help_text=_("disk, cdrom, floppy or lun."))
    bus = models.CharField(max_length=16, blank=True)
    readonly = models.BooleanField(default=False)
    shareable = models.BooleanField(default=False)
    cache = models.CharField(max_length=16, blank=True, help_text=_("Empty: the hypervisor's default."))

    class Meta:
        ordering = ["domain", "target"]
        indexes = [models.Index(fields=["host", "pool_name", "volume_name"])]

    def __str__(self) -> str:
        return f"{self.domain} ({self.target})" if self.target else self.domain


def disk_uses_volume(pool_name, path, name) -> models.Q:
    """A DomainDisk condition: the disk is this volume, by path or by pool and volume name.

    The arguments are values or expressions (an OuterRef for a subquery over volumes)."""
    return (models.Q(path=path) & ~models.Q(path="")) | models.Q(pool_name=pool_name, volume_name=name)


def vm_names_by_volume(host_id: int, pool_name: str, volumes) -> dict[int, list[str]]:
    """For each volume of the pool (objects with pk, path and name): the names of the VMs that have it as a
    disk, by path or by pool and volume name, as of the last sync. One query for all of them."""
    volumes = list(volumes)
    paths, names = {v.path for v in volumes if v.path}, {v.name for v in volumes}
    disks = (DomainDisk.objects.filter(host_id=host_id)
             .filter(models.Q(path__in=paths) | models.Q(pool_name=pool_name, volume_name__in=names))
             .values_list("domain", "path", "pool_name", "volume_name"))
    by_path: dict[str, set[str]] = {}
    by_name: dict[str, set[str]] = {}
    for domain, path, disk_pool, volume_name in disks:
        if path:
            by_path.setdefault(path, set()).add(domain)
        if disk_pool == pool_name and volume_name:
            by_name.setdefault(volume_name, set()).add(domain)
    return {v.pk: sorted(by_path.get(v.path, set()) | by_name.get(v.name, set())) for v in volumes}
