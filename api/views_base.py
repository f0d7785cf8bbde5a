"""What every API view shares: login by token or session (not the login page's redirect), 202 answers that name
the job, and the schema notes of an operation."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from jobs.models import Job

from .serializers import JobAcceptedSerializer, accepted


class ApiViewSet(viewsets.GenericViewSet):
    """Authenticated by DRF (a 401 in the API's shape), so Django's LoginRequiredMiddleware lets it through."""

    queryset = None  # each view's Model.objects.none(): the schema generator reads the model there
    lookup_value_regex = "[0-9]{1,18}"  # an id the database can hold; anything else is not there (404)

    @classmethod
    def as_view(cls, actions=None, **initkwargs):
        return login_not_required(super().as_view(actions, **initkwargs))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator, with no user
            return self.queryset
        return self.visible(self.request.user)

    def visible(self, user):
        """What the user may see (accounts.access and the models' visible_to decide)."""
        raise NotImplementedError


class ReadOnlyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    detail_serializer_class = None

    def get_serializer_class(self):
        if self.action == "retrieve" and self.detail_serializer_class is not None:
            return self.detail_serializer_class
        return super().get_serializer_class()


def job_accepted(job: Job, warnings: list[str] | None = None) -> Response:
    """202: the operation runs as this job; follow it at url (JSON) or events (server-sent events)."""
    return Response({**accepted(job), "warnings": list(warnings or [])}, status=status.HTTP_202_ACCEPTED)


def operation(summary: str, request=None, description: str = ""):
    """The schema of an operation that answers 202 with its job."""
    return extend_schema(summary=summary, description=description or None, request=request,
                         responses={202: OpenApiResponse(JobAcceptedSerializer, description="The job runs it.")})
