"""Forms that define a pool: one per pool type, or raw XML (the lifecycle and policy forms: forms.py).

Every name, path and address is checked here with the libvirt layer's validators
before libvirt sees it; duplicates are checked against the host's inventory
(libvirt rechecks on define and its error lands in the form too). A pool's directory
(dir, fs, netfs) must lie inside settings.POOL_ROOTS once symlinks are followed; it
is read on every check, so a changed setting applies at once.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.log import refused
from virtstorage.virt import pools as vpools

from .models import StoragePool

# Per pool type: (field, required, label, help). Only these fields appear in that type's form.
TYPE_FIELDS: dict[str, list[tuple[str, bool, str, str]]] = {
    "dir": [
        ("target_path", True, _("Directory"), _("Volumes are files here, e.g. /var/lib/libvirt/images/vms. "
                                              "Build creates it.")),
    ],
    "fs": [
        ("source_device", True, _("Block device"), _("The device holding the file system, e.g. /dev/sdb1.")),
        ("source_format", False, _("File system"), _("Build formats the device with it (mkfs); auto only mounts.")),
        ("target_path", True, _("Mount point"), _("Where libvirt mounts the device when the pool starts.")),
    ],
    "netfs": [
        ("source_host", True, _("Server"), _("NFS or CIFS server: host name or IP address.")),
        ("source_format", True, _("Protocol"), ""),
        ("source_dir", True, _("Export path"),
         _("The exported directory (/export/vms) or, for CIFS, the share name.")),
        ("target_path", True, _("Mount point"), _("Where libvirt mounts the export when the pool starts.")),
    ],
    "logical": [
        ("source_name", True, _("Volume group"), _("The LVM volume group; Build creates it from the devices below.")),
        ("source_devices", False, _("Physical volumes"),
         _("One device per line, e.g. /dev/sdc. Needed only to build.")),
        ("target_path", False, _("Device directory"), _("Leave empty for /dev/<volume group>.")),
    ],
    "disk": [
        ("source_device", True, _("Disk"), _("The whole disk, e.g. /dev/sdd; volumes are its partitions.")),
        ("source_format", False, _("Partition table"), _("Build writes a new, empty partition table of this type.")),
    ],
    "iscsi": [
        ("source_host", True, _("Portal"), _("iSCSI portal host[:port], e.g. 192.0.2.10:3260.")),
        ("target_iqn", True, _("Target IQN"), _("e.g. iqn.2024-01.com.example:storage.vms")),
        ("initiator_iqn", False, _("Initiator IQN"), _("Leave empty to use the host's own initiator name.")),
        ("auth_username", False, _("CHAP user"), _("Only if the target asks for CHAP.")),
        ("auth_secret_uuid", False, _("CHAP secret"), _("UUID of a libvirt secret holding the CHAP password.")),
    ],
    "iscsi-direct": [
        ("source_host", True, _("Portal"), _("iSCSI portal host[:port], e.g. 192.0.2.10:3260.")),
        ("target_iqn", True, _("Target IQN"), _("e.g. iqn.2024-01.com.example:storage.vms")),
        ("initiator_iqn", True, _("Initiator IQN"), _("libiscsi logs in with this name.")),
        ("auth_username", False, _("CHAP user"), _("Only if the target asks for CHAP.")),
        ("auth_secret_uuid", False, _("CHAP secret"), _("UUID of a libvirt secret holding the CHAP password.")),
    ],
    "rbd": [
        ("source_name", True, _("Ceph pool"), _("The RADOS pool that holds the images.")),
        ("source_hosts", True, _("Monitors"), _("One monitor per line: host[:port].")),
        ("auth_username", False, _("Ceph user"), _("e.g. libvirt (without the client. prefix).")),
        ("auth_secret_uuid", False, _("Ceph secret"), _("UUID of the libvirt secret holding the user's key.")),
    ],
    "zfs": [
        ("source_name", True, _("ZFS pool"), _("The zpool name; Build creates it from the devices below.")),
        ("source_device", False, _("Device"),
         _("The device to build the zpool on, e.g. /dev/sdf. Needed only to build.")),
    ],
}

TYPE_DESCRIPTIONS = {
    "dir": _("A directory on the host"),
    "fs": _("A local block device with a file system"),
    "netfs": _("An NFS, CIFS or GlusterFS export"),
    "logical": _("An LVM volume group"),
    "disk": _("A whole disk; volumes are partitions"),
    "iscsi": _("An iSCSI target, through the host's initiator"),
    "iscsi-direct": _("An iSCSI target, through libiscsi"),
    "rbd": _("A Ceph RADOS block device pool"),
    "zfs": _("A ZFS pool"),
}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _checked(validator, *args):
    try:
        return validator(*args)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _pool_directory(path: str) -> str:
    """A dir/fs/netfs pool's directory: plainly written, and inside the pool roots once resolved.

    libvirt gets the path as written; the check resolves its symlinks when the form is sent.
    """
    roots = list(settings.POOL_ROOTS)
    try:
        vpools.check_pool_target(vpools.validate_directory_path(path), roots)
    except ValueError as exc:
        message = str(exc)
        hint = vpools.roots_hint(roots)
        refused("pool.define", message, target=path, target_type="pool")
        raise ValidationError(message if hint in message else f"{message} {hint}") from None
    return path


def _confined(check: Callable[..., str], value: str, allowed: list[str]) -> str:
    """value, when check (a device or group rule) allows it; otherwise the refusal is audited and a form error."""
    try:
        return check(value, allowed)
    except ValueError as exc:
        refused("pool.define", str(exc), target=value, target_type="pool")
        raise ValidationError(str(exc)) from None


class _HostPoolsMixin:
    """Duplicate checks against the host's inventory."""

    host = None

    def _unique_name(self, name: str) -> str:
        if StoragePool.objects.filter(host=self.host, name=name).exists():
            raise ValidationError(gettext("%(host)s already has a pool named %(name)s.")
                                  % {"host": self.host, "name": name})
        return name

    def _unique_target(self, path: str) -> str:
        """No other pool of the host on this path, nor inside it, nor around it: nested pools would see (and
        delete, wipe, overwrite) each other's files."""
        if not path:
            return path
        for other in StoragePool.objects.filter(host=self.host).exclude(target_path="").only("name", "target_path"):
            if other.target_path == path:
                raise ValidationError(gettext("Pool %(pool)s already uses %(path)s; two pools on one path would "
                                              "see each other's volumes.") % {"pool": other.name, "path": path})
            if vpools.is_inside(other.target_path, path) or vpools.is_inside(path, other.target_path):
                raise ValidationError(gettext("Pool %(pool)s uses %(other)s: a pool on %(path)s would hold it or "
                                              "lie inside it, and nested pools see each other's files.")
                                      % {"pool": other.name, "other": other.target_path, "path": path})
        return path


class PoolDefineForm(_HostPoolsMixin, forms.Form):
    """The fields one pool type needs; the rest are removed in __init__."""

    # Not stripped: " vms" is not "vms", so it is refused rather than guessed at.
    name = forms.CharField(label=_("Name"), max_length=vpools.MAX_POOL_NAME, strip=False,
                           help_text=_("Letters, digits and . _ + -"))
    target_path = forms.CharField(required=False, max_length=4096)
    source_device = forms.CharField(required=False, max_length=4096)
    source_devices = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    source_format = forms.ChoiceField(required=False, choices=())
    source_host = forms.CharField(required=False, max_length=300)
    source_hosts = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    source_dir = forms.CharField(required=False, max_length=4096)
    source_name = forms.CharField(required=False, max_length=127)
    target_iqn = forms.CharField(required=False, max_length=223)
    initiator_iqn = forms.CharField(required=False, max_length=223)
    auth_username = forms.CharField(required=False, max_length=64)
    auth_secret_uuid = forms.CharField(required=False, max_length=36)
    start_now = forms.BooleanField(required=False, label=_("Build and start it after defining"))

    def __init__(self, *args, host, pool_type: str, support: vpools.PoolTypeSupport | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.host = host
        self.pool_type = pool_type
        wanted = {"name", "start_now"}
        for field_name, required, label, help_text in TYPE_FIELDS[pool_type]:
            wanted.add(field_name)
            field = self.fields[field_name]
            field.required = required
            field.label = label
            field.help_text = help_text
        for field_name in list(self.fields):
            if field_name not in wanted:
                del self.fields[field_name]
        if pool_type in vpools.DIRECTORY_TARGET_TYPES:
            field = self.fields["target_path"]
            roots = gettext("Must be under %(roots)s (POOL_ROOTS).") % {"roots": vpools.roots_text(settings.POOL_ROOTS)}
            field.help_text = f"{field.help_text} {roots}"
        if "source_format" in self.fields:
            formats = list(support.source_formats if support else ())
            if pool_type == "logical":
                formats = [f for f in formats if f == "lvm2"]
            self.fields["source_format"].choices = [(f, f) for f in formats]
            if support and support.default_format in formats:
                self.fields["source_format"].initial = support.default_format
            if pool_type == "netfs":
                self.fields["source_format"].initial = "nfs"

    # -- per field --------------------------------------------------------------
    def clean_name(self) -> str:
        return self._unique_name(_checked(vpools.validate_pool_name, self.cleaned_data["name"]))

    def clean_target_path(self) -> str:
        path = self.cleaned_data["target_path"].strip()
        if not path:
            return path
        if self.pool_type == "logical":
            return self._unique_target(_checked(vpools.validate_device_path, path))
        return self._unique_target(_pool_directory(path))

    def clean_source_device(self) -> str:
        path = self.cleaned_data["source_device"].strip()
        return _confined(vpools.check_pool_device, path, settings.POOL_DEVICES) if path else path

    def clean_source_devices(self) -> list[str]:
        return [_confined(vpools.check_pool_device, p, settings.POOL_DEVICES)
                for p in _lines(self.cleaned_data["source_devices"])]

    def clean_source_host(self) -> str:
        text = self.cleaned_data["source_host"].strip()
        if text:
            _checked(vpools.validate_host_address, text)
        return text

    def clean_source_hosts(self) -> list[str]:
        hosts = _lines(self.cleaned_data["source_hosts"])
        for text in hosts:
            _checked(vpools.validate_host_address, text)
        if self.fields["source_hosts"].required and not hosts:
            raise ValidationError(gettext("Enter at least one monitor."))
        return hosts

    def clean_source_name(self) -> str:
        text = self.cleaned_data["source_name"].strip()
        name = _checked(vpools.validate_source_name, text, self.fields["source_name"].label.lower()) if text else text
        if name and self.pool_type in vpools.GROUP_TYPES:  # a volume group or zpool, not a Ceph pool
            _confined(vpools.check_pool_group, name, settings.POOL_GROUPS)
        return name

    def clean_target_iqn(self) -> str:
        text = self.cleaned_data["target_iqn"].strip()
        return _checked(vpools.validate_iqn, text, gettext("target IQN")) if text else text

    def clean_initiator_iqn(self) -> str:
        text = self.cleaned_data["initiator_iqn"].strip()
        return _checked(vpools.validate_iqn, text, gettext("initiator IQN")) if text else text

    def clean_auth_username(self) -> str:
        text = self.cleaned_data["auth_username"].strip()
        return _checked(vpools.validate_username, text) if text else text

    def clean_auth_secret_uuid(self) -> str:
        text = self.cleaned_data["auth_secret_uuid"].strip()
        return _checked(vpools.validate_uuid, text) if text else text

    def clean(self) -> dict:
        data = super().clean()
        if "source_dir" in self.fields and data.get("source_dir"):
            try:
                data["source_dir"] = vpools.validate_export_path(data["source_dir"].strip(),
                                                                 data.get("source_format", ""))
            except ValueError as exc:
                self.add_error("source_dir", str(exc))
        if "auth_username" in self.fields and bool(data.get("auth_username")) != bool(data.get("auth_secret_uuid")):
            self.add_error("auth_secret_uuid", gettext("Give both the user and the secret, or neither."))
        return data

    def spec(self) -> vpools.PoolSpec:
        data = self.cleaned_data
        devices = data.get("source_devices") or ([data["source_device"]] if data.get("source_device") else [])
        hosts = data.get("source_hosts") or ([data["source_host"]] if data.get("source_host") else [])
        return vpools.PoolSpec(
            name=data["name"], type=self.pool_type, target_path=data.get("target_path", ""),
            source_devices=tuple(devices), source_format=data.get("source_format", ""),
            source_hosts=tuple(hosts), source_dir=data.get("source_dir", ""),
            source_name=data.get("source_name", ""), target_iqn=data.get("target_iqn", ""),
            initiator_iqn=data.get("initiator_iqn", ""), auth_username=data.get("auth_username", ""),
            auth_secret_uuid=data.get("auth_secret_uuid", ""),
        )

    def pool_name(self) -> str:
        return self.cleaned_data["name"]

    def pool_xml(self) -> str:
        return vpools.pool_xml(self.spec())


class RawPoolXmlForm(_HostPoolsMixin, forms.Form):
    """Pasted pool XML: the app checks name, type and paths; libvirt validates the rest on define."""

    xml = forms.CharField(label=_("Pool XML"), max_length=20000, widget=forms.Textarea(attrs={"rows": 16, "cols": 80}),
                          help_text=_("As `virsh pool-dumpxml` prints it. libvirt validates it against its schema "
                                      "before anything is defined."))
    start_now = forms.BooleanField(required=False, label=_("Build and start it after defining"))

    def __init__(self, *args, host, supported: dict[str, vpools.PoolTypeSupport], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.host = host
        self.supported = supported

    def clean_xml(self) -> str:
        text = self.cleaned_data["xml"].strip()
        summary = _checked(vpools.summarize_pool_xml, text)
        if summary.type not in vpools.POOL_TYPES:
            # The app checks the paths of the types it knows; another type's paths would go unchecked.
            raise ValidationError(gettext("virtstorage does not know pool type '%(type)s': paste XML of a "
                                          "%(types)s pool.") % {"type": summary.type[:40],
                                                                "types": ", ".join(vpools.POOL_TYPES)})
        support = self.supported.get(summary.type)
        if support is None:
            raise ValidationError(gettext("libvirt on %(host)s does not know pool type '%(type)s'.")
                                  % {"host": self.host, "type": summary.type[:40]})
        if not support.supported:
            raise ValidationError(gettext("libvirt on %(host)s does not support %(type)s pools.")
                                  % {"host": self.host, "type": summary.type})
        errors = []
        try:
            self._unique_name(_checked(vpools.validate_pool_name, summary.name))
        except ValidationError as exc:
            errors.extend(exc.messages)
        try:
            if summary.type in vpools.DIRECTORY_TARGET_TYPES:
                self._unique_target(_pool_directory(summary.target_path))
            elif summary.target_path:
                # logical, disk, iscsi, zfs: where libvirt finds the volumes' device nodes.
                _checked(vpools.validate_device_dir, summary.target_path)
        except ValidationError as exc:
            errors.extend(exc.messages)
        for refusal in vpools.source_refusals(summary, settings.POOL_DEVICES, settings.POOL_GROUPS):
            refused("pool.define", refusal, target=summary.name, target_type="pool")
            errors.append(refusal)
        if errors:
            raise ValidationError(errors)
        self.summary = summary
        return text

    def pool_name(self) -> str:
        return self.summary.name

    def pool_xml(self) -> str:
        return self.cleaned_data["xml"]
