from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    label = "provisioning"
    verbose_name = _("Provisioning requests")

    def ready(self) -> None:
        from jobs.signals import job_finished
        from volumes.quota import reserving

        from .quota import reserved_by_requests
        from .services import job_finished as settle_request

        # A create job's end makes its request ready or failed, in the process that ended the job.
        job_finished.connect(settle_request, dispatch_uid="provisioning.settle_request")
        # Approved requests not made yet count against their team's quota wherever volumes/quota.py checks it.
        reserving.connect(reserved_by_requests, dispatch_uid="provisioning.reserved_by_requests")
