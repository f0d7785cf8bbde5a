"""What the API shows of each object (read only: every change goes through a form and a job, views_*.py)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Membership, Team
from audit.models import AuditRecord
from hosts.models import Domain, DomainDisk, Host
from jobs.models import Job
from pools.models import StoragePool
from provisioning.models import ProvisioningRequest
from volumes.models import Upload, Volume


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Host
        fields = ["id", "name", "uri", "description", "enabled", "disabled_reason", "direct_io", "status",
                  "last_error", "last_checked_at", "last_seen_at", "last_synced_at", "hostname", "libvirt_version",
                  "hypervisor", "cpus", "memory_bytes"]


class PoolSerializer(serializers.ModelSerializer):
    overcommit = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = StoragePool
        fields = ["id", "host", "name", "uuid", "type", "state", "autostart", "persistent", "capacity", "allocation",
                  "available", "target_path", "synced_at", "volume_count", "volume_capacity_total", "overcommit",
                  "max_overcommit", "reserve_bytes"]


class VolumeSerializer(serializers.ModelSerializer):
    in_use = serializers.BooleanField(read_only=True, help_text="A VM defined on the host has it as a disk.")
    download_url = serializers.SerializerMethodField(help_text="GET: the bytes (?format=sparse: the framed format).")
    synced_at = serializers.DateTimeField(source="listed_at", read_only=True, allow_null=True,
                                          help_text="When libvirt last listed the volume.")

    class Meta:
        model = Volume
        fields = ["id", "pool", "name", "path", "type", "format", "capacity", "allocation", "physical",
                  "backing_path", "backing_format", "unsafe_reason", "team", "in_use", "synced_at", "download_url"]

    def get_download_url(self, volume: Volume) -> str:
        return reverse("volumes:download", args=[volume.pk])


class VolumeDetailSerializer(VolumeSerializer):
    vms = serializers.SerializerMethodField(help_text="The VMs that have it as a disk, as of the last sync.")

    class Meta(VolumeSerializer.Meta):
        fields = [*VolumeSerializer.Meta.fields, "key", "xml", "vms"]

    def get_vms(self, volume: Volume) -> list[str]:
        return volume.vm_names()


class JobSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True, allow_null=True)
    events_url = serializers.SerializerMethodField(help_text="Server-sent events of its progress, as the page uses.")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "state", "host", "pool", "pool_name", "volume_name", "target_pool",
                  "target_volume_name", "created_by", "created_at", "started_at", "finished_at", "progress_done",
                  "progress_total", "percent", "message", "result", "error", "cancellable", "cancel_requested",
                  "events_url"]

    def get_events_url(self, job: Job) -> str:
        return reverse("jobs:events", args=[job.pk])


class JobDetailSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "params", "log"]


class JobAcceptedSerializer(serializers.Serializer):
    """202: the operation runs as this job."""

    job = serializers.IntegerField()
    url = serializers.CharField(help_text="The job in the API: state, progress, message, result, error.")
    events = serializers.CharField(help_text="The job's server-sent events (text/event-stream).")
    warnings = serializers.ListField(child=serializers.CharField(), help_text="What the checks warned of.")


def accepted(job: Job) -> dict:
    return {"job": job.pk, "url": reverse("api:job-detail", args=[job.pk]), "events": reverse("jobs:events",
                                                                                              args=[job.pk])}


class UploadSerializer(serializers.ModelSerializer):
    missing = serializers.SerializerMethodField()
    next_offset = serializers.IntegerField(read_only=True)
    chunks_url = serializers.SerializerMethodField(
        help_text="PUT chunks here (Content-Range, or ?offset=&hole=), or many runs and holes in one body "
                  "(Content-Type: application/vnd.virtstorage.sparse).")
    holes_url = serializers.SerializerMethodField(help_text='POST {"holes": [[offset, length], ...]}.')
    complete_url = serializers.SerializerMethodField(help_text="POST when every chunk is sent.")

    class Meta:
        model = Upload
        fields = ["id", "pool", "volume_name", "mode", "filename", "size", "capacity", "received_bytes",
                  "hole_bytes", "state", "completed", "streaming", "stated_format", "error", "job", "created_at",
                  "updated_at", "missing", "next_offset", "chunks_url", "holes_url", "complete_url"]

    @extend_schema_field({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}})
    def get_missing(self, upload: Upload) -> list:
        return upload.missing()[:100]

    def get_chunks_url(self, upload: Upload) -> str:
        return reverse("volumes:upload_chunks", args=[upload.pk])

    def get_holes_url(self, upload: Upload) -> str:
        return reverse("volumes:upload_holes", args=[upload.pk])

    def get_complete_url(self, upload: Upload) -> str:
        return reverse("volumes:upload_complete", args=[upload.pk])


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role"]


class TeamSerializer(serializers.ModelSerializer):
    members = MembershipSerializer(source="memberships", many=True, read_only=True)
    pools = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "description", "all_pools", "auto_approve_max_bytes", "members", "pools"]


class RequestSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ProvisioningRequest
        fields = ["id", "state", "team", "pool", "name", "capacity", "format", "preallocation", "backing",
                  "backing_path", "purpose", "requested_by", "reviewer", "review_comment", "reviewed_at", "job",
                  "volume", "error", "created_at", "updated_at"]


class OutcomeSerializer(serializers.Serializer):
    """What a step on a request did: ok, and in words."""

    request = serializers.IntegerField()
    ok = serializers.BooleanField()
    message = serializers.CharField()
    job = serializers.IntegerField(allow_null=True)


class AuditRecordSerializer(serializers.ModelSerializer):
    detail = serializers.JSONField()

    class Meta:
        model = AuditRecord
        fields = ["id", "at", "username", "team", "action", "target_type", "target_id", "target", "outcome",
                  "client_ip", "detail"]


class DiskSerializer(serializers.ModelSerializer):
    class Meta:
        model = DomainDisk
        fields = ["target", "path", "pool_name", "volume_name", "source_type", "device", "bus", "readonly",
                  "shareable", "cache"]


class VmSerializer(serializers.ModelSerializer):
    class Meta:
        model = Domain
        fields = ["id", "host", "name", "uuid", "state", "vcpus", "memory_kib", "persistent", "team", "synced_at"]


class VmDetailSerializer(VmSerializer):
    disks = DiskSerializer(many=True, read_only=True)

    class Meta(VmSerializer.Meta):
        fields = [*VmSerializer.Meta.fields, "disks"]


class ErrorItemSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable code, a message, and the fields' own messages."""

    code = serializers.CharField()
    message = serializers.CharField()
    errors = serializers.DictField(child=ErrorItemSerializer(many=True))

