"""The Celery app. Long libvirt work runs here, never in a request."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtstorage.settings")

app = Celery("virtstorage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(related_name="upload_job")  # volumes.upload_job: the upload job, expiry
