"""Jobs (state, progress, result, error; cancel) and uploads (opened here, their chunks sent to the resumable
chunk endpoints the browser uses, which take the same token)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs.cancel import request_cancel
from jobs.models import Job
from volumes.models import Upload
from volumes.upload_forms import UploadForm
from volumes.upload_views import StagingRefused, abandon, start_upload

from . import filters, serializers
from .errors import body, valid
from .form_schema import form_serializer
from .views_base import ApiViewSet, ReadOnlyViewSet

OpenUpload = form_serializer("OpenUpload", UploadForm)


class JobViewSet(ReadOnlyViewSet):
    """Your jobs (an admin: everyone's), newest first. Follow one at events_url (server-sent events)."""

    queryset = Job.objects.none()
    serializer_class = serializers.JobSerializer
    detail_serializer_class = serializers.JobDetailSerializer
    filterset_class = filters.JobFilter
    ordering_fields = ["created_at", "finished_at", "state", "kind"]
    ordering = ["-created_at", "-pk"]

    def visible(self, user):
        return Job.objects.visible_to(user).select_related("created_by")

    @extend_schema(summary="Cancel the job (where it can be cancelled)", request=None,
                   responses={200: serializers.JobDetailSerializer})
    @action(detail=True, methods=["post"], url_path="cancel", url_name="cancel")
    def cancel(self, request, pk=None):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        if not request_cancel(job, request=request):
            words = {"job": job.pk, "state": job.get_state_display().lower()}
            message = (_("Job #%(job)s is %(state)s.") if job.cancellable
                       else _("Job #%(job)s is %(state)s and cannot be cancelled.")) % words
            return Response({"code": "not_cancellable", "message": message, "errors": {}},
                            status=status.HTTP_409_CONFLICT)
        return Response(serializers.JobDetailSerializer(job).data)


class UploadViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, ReadOnlyViewSet, ApiViewSet):
    """Your uploads. Open one here, then PUT its chunks to chunks_url, declare holes at holes_url and POST
    complete_url: the resumable chunk protocol of the pages, with the same token."""

    queryset = Upload.objects.none()
    serializer_class = serializers.UploadSerializer
    filterset_class = filters.UploadFilter
    ordering_fields = ["created_at", "updated_at", "state"]
    ordering = ["-created_at"]
    lookup_value_regex = "[0-9a-f-]{36}"

    def visible(self, user):
        return Upload.objects.visible_to(user)

    @extend_schema(summary="Open an upload (a new volume, or replacing one)", request=OpenUpload,
                   responses={201: serializers.UploadSerializer,
                              507: OpenApiResponse(serializers.ErrorSerializer, description="No staging space.")})
    def create(self, request, *args, **kwargs):
        form = valid(UploadForm(body(request), user=request.user))
        try:
            upload, _job = start_upload(request, form)
        except StagingRefused as exc:
            return Response({"code": "insufficient_storage", "message": str(exc), "errors": {}}, status=507)
        return Response(serializers.UploadSerializer(upload).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Abandon the upload and free its staging space", responses={204: None})
    def destroy(self, request, *args, **kwargs):
        upload = self.get_object()
        upload.settle()
        if refusal := abandon(request, upload):
            return Response({"code": "upload_busy", "message": refusal, "errors": {}}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)
