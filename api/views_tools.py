"""The image tools through the API, as on the volume and pool pages: qemu-img check of a qcow2 volume and convert
into a new volume (whoever may clone the volume: members of its team), import of a file of the app's machine into
a pool (admins). The pages' forms check the data (volumes.tools_forms) and volumes.tools_ops says what may be
checked and which job each tool starts; each answers 202 with its job, whose result holds the report.

qemu-img info is the Image panel's info job (whoever sees the volume): its report is in the job's params.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import serializers as drf
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import access
from volumes import info_job, tools_ops
from volumes.forms import FORMAT_CHOICES
from volumes.models import Volume
from volumes.tools_forms import ConvertForm, ImportForm

from .errors import body, valid
from .form_schema import form_serializer
from .views_base import job_accepted, operation

ConvertVolume = form_serializer("ConvertVolume", ConvertForm)
ImportImage = form_serializer("ImportImage", ImportForm, exclude=("format",), extra={
    "format": drf.ChoiceField(choices=["", *(value for value, _label in FORMAT_CHOICES)], allow_blank=True,
                              required=False, help_text="Left out or empty: the format the file's content has.")})

INFO = ("The job reads the volume and its verified backing chain with qemu-img info; when it has succeeded, "
        "GET the job: params.report holds format, virtual and disk size, cluster size, flags and the chain beside "
        "libvirt's capacity and allocation. Refused (409) for a volume the image check refused, a stopped pool and "
        "a host that is not the app's own machine.")
CHECK = ("Read only: nothing is repaired. The job's result says what qemu-img found (leaked clusters, corruption) "
         "and which repair would fix it. Refused (409) for a raw volume, a volume the image check refused, and a "
         "host that is not the app's own machine.")
CONVERT = ("The image is read through its verified backing chain and written flat into a new volume of a pool of "
           "the same host that you may use; the source stays as it is.")
IMPORT = ("The file must be inside the import roots (IMPORT_ROOTS); its format is read from its content, never its "
          "name, and an image that names other files is refused.")


class VolumeTools:
    """qemu-img check and convert of a volume (VolumeViewSet)."""

    def _tool_volume(self, pk) -> Volume:
        """The volume if the user sees it (404) and may use its tools, as a clone (403)."""
        volume = get_object_or_404(Volume.objects.visible_to(self.request.user).select_related("pool__host"), pk=pk)
        access.require(self.request.user, "clone", volume.pool)
        return volume

    @operation("Read the volume's image with qemu-img info (whoever sees the volume)", description=INFO)
    @action(detail=True, methods=["post"], url_path="info", url_name="info")
    def info(self, request, pk=None):
        volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool__host"), pk=pk)
        if refusal := tools_ops.info_refusal(volume):
            return Response({"code": "refused", "message": next(iter(refusal.values())), "errors": {}},
                            status=status.HTTP_409_CONFLICT)
        return job_accepted(info_job.start_info(volume, user=request.user, request=request))

    @operation("Check a qcow2 volume's image with qemu-img check (members)", description=CHECK)
    @action(detail=True, methods=["post"], url_path="check", url_name="check")
    def check(self, request, pk=None):
        volume = self._tool_volume(pk)
        if refusal := tools_ops.check_refusal(volume):
            return Response({"code": "refused", "message": refusal, "errors": {}}, status=status.HTTP_409_CONFLICT)
        return job_accepted(tools_ops.start(tools_ops.check_job(volume), user=request.user, request=request))

    @operation("Convert the volume into a new volume (members): raw or qcow2, compressed, preallocated",
               request=ConvertVolume, description=CONVERT)
    @action(detail=True, methods=["post"], url_path="convert", url_name="convert")
    def convert(self, request, pk=None):
        volume = self._tool_volume(pk)
        form = valid(ConvertForm(body(request), volume=volume, user=request.user))
        return job_accepted(tools_ops.start(tools_ops.convert_job(volume, form), user=request.user, request=request),
                            form.warnings)


class PoolImport:
    """Import of a file of the app's machine into the pool (PoolViewSet)."""

    @operation("Import a file of the app's machine into a new volume of the pool (admins)", request=ImportImage,
               description=IMPORT)
    @action(detail=True, methods=["post"], url_path="import", url_name="import")
    def import_image(self, request, pk=None):
        pool = get_object_or_404(self.get_queryset(), pk=pk)
        access.require(request.user, "manage", pool)
        form = valid(ImportForm(body(request), pool=pool))
        return job_accepted(tools_ops.start(tools_ops.import_job(pool, form), user=request.user, request=request),
                            form.warnings)
