"""Provisioning requests and approvals: filed, edited, withdrawn, retried and reviewed through the request pages'
forms (provisioning.forms) and steps (provisioning.services), with the same rules (provisioning.rules)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import access
from pools.models import StoragePool
from provisioning import rules, services
from provisioning.forms import RequestForm, ReviewForm
from provisioning.models import ProvisioningRequest

from . import filters, serializers
from .errors import body, object_id, valid
from .form_schema import form_serializer
from .views_base import ReadOnlyViewSet

FileRequest = form_serializer("FileRequest", RequestForm, extra={
    "pool": drf.IntegerField(help_text="The pool the volume is asked in."),
    "team": drf.IntegerField(help_text="The team whose quota it counts against.")})
EditRequest = form_serializer("EditRequest", RequestForm, extra={"team": drf.IntegerField()})
Review = form_serializer("Review", ReviewForm)


class Filed(drf.Serializer):
    request = serializers.RequestSerializer()
    message = drf.CharField()
    warnings = drf.ListField(child=drf.CharField())


def _filed(req: ProvisioningRequest, note: str, warnings: list[str], code: int = status.HTTP_200_OK) -> Response:
    return Response({"request": serializers.RequestSerializer(req).data, "message": note,
                     "warnings": list(warnings)}, status=code)


def _outcome(outcome: services.Outcome) -> dict:
    job = ProvisioningRequest.objects.filter(pk=outcome.pk).values_list("job_id", flat=True).first()
    return {"request": outcome.pk, "ok": outcome.ok, "message": outcome.message, "job": job}


class RequestViewSet(ReadOnlyViewSet):
    """Your requests and those you may review. File one (members of a team that may use the pool)."""

    queryset = ProvisioningRequest.objects.none()
    serializer_class = serializers.RequestSerializer
    filterset_class = filters.RequestFilter
    ordering_fields = ["created_at", "updated_at", "state", "capacity", "name"]
    ordering = ["-created_at", "-pk"]

    def visible(self, user):
        return rules.visible(user).select_related("requested_by", "reviewer")

    def _visible(self, pk) -> ProvisioningRequest:
        req = get_object_or_404(self.get_queryset().select_related("team", "pool", "pool__host"), pk=pk)
        return services.catch_up(req)

    def retrieve(self, request, pk=None):
        """One request, brought up to date with its job first, as its page is: a job that ended shows as a
        ready or failed request, whether or not the worker has settled it yet."""
        return Response(self.get_serializer(self._visible(pk)).data)

    @extend_schema(summary="File a request for a volume", request=FileRequest, responses={201: Filed})
    def create(self, request):
        data = body(request)
        pool_pk = data.get("pool")
        pool = get_object_or_404(StoragePool.objects.visible_to(request.user).select_related("host"),
                                 pk=object_id(pool_pk))
        access.require(request.user, "request", pool)
        if not rules.requesting_teams(request.user, pool).exists():
            raise PermissionDenied(_("None of your teams may use pool %(pool)s.") % {"pool": pool.name})
        form = valid(RequestForm(data, pool=pool, user=request.user))
        req, note = services.submit(user=request.user, pool=pool, data=form.cleaned_data, request=request)
        return _filed(req, note, form.warnings, status.HTTP_201_CREATED)

    @extend_schema(summary="Change your pending request", request=EditRequest, responses={200: Filed})
    @action(detail=True, methods=["post"], url_path="edit", url_name="edit")
    def edit(self, request, pk=None):
        req = self._own(pk)
        form = valid(RequestForm(body(request), pool=req.pool, user=request.user, instance=req))
        try:
            req, note = services.edit(req.pk, user=request.user, data=form.cleaned_data, changes=form.changes(),
                                      request=request)
        except services.Refused as exc:
            return _refused(str(exc))
        return _filed(req, note, form.warnings)

    @extend_schema(summary="Withdraw your pending request", request=None,
                   responses={200: serializers.RequestSerializer})
    @action(detail=True, methods=["post"], url_path="withdraw", url_name="withdraw")
    def withdraw(self, request, pk=None):
        req = self._own(pk)
        try:
            req = services.withdraw(req.pk, user=request.user, request=request)
        except services.Refused as exc:
            return _refused(str(exc))
        return Response(serializers.RequestSerializer(req).data)

    @extend_schema(summary="Retry a failed request (its requester or an approver)", request=None,
                   responses={200: serializers.OutcomeSerializer})
    @action(detail=True, methods=["post"], url_path="retry", url_name="retry")
    def retry(self, request, pk=None):
        req = self._visible(pk)
        if not (rules.own_request(request.user, req) or rules.may_review(request.user, req)):
            raise PermissionDenied(_("Only the requester or an approver may retry a request."))
        outcome = services.retry(req.pk, user=request.user, request=request)
        return Response(_outcome(outcome), status=status.HTTP_200_OK if outcome.ok else status.HTTP_409_CONFLICT)

    def _own(self, pk) -> ProvisioningRequest:
        req = self._visible(pk)
        if not rules.own_request(self.request.user, req):
            raise PermissionDenied(_("Only the requester may change or withdraw a request."))
        return req


def _refused(message: str) -> Response:
    return Response({"code": "refused", "message": message, "errors": {}}, status=status.HTTP_409_CONFLICT)


class ApprovalViewSet(ReadOnlyViewSet):
    """The approval queue: pending requests you may review, oldest first (admins: all; operators: their
    teams'). Review one or many at once, as on the page."""

    queryset = ProvisioningRequest.objects.none()
    serializer_class = serializers.RequestSerializer
    filterset_class = filters.RequestFilter
    ordering_fields = ["created_at", "capacity"]
    ordering = ["created_at", "pk"]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not rules.is_approver(request.user):
            raise PermissionDenied(_("The approval queue is for admins and the operators of a team."))

    def visible(self, user):
        return (rules.approvable(user).filter(state=ProvisioningRequest.State.PENDING)
                .select_related("requested_by", "reviewer"))

    @extend_schema(summary="Approve or reject requests, with a comment (a rejection needs one)", request=Review,
                   responses={200: serializers.OutcomeSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="review", url_name="review")
    def review(self, request):
        form = valid(ReviewForm(body(request), user=request.user))
        approve = form.cleaned_data["decision"] == "approve"
        outcomes = [services.review(req.pk, request.user, approve=approve, comment=form.cleaned_data["comment"],
                                    request=request) for req in form.cleaned_data["requests"]]
        return Response([_outcome(outcome) for outcome in outcomes])
