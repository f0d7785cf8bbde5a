"""The Celery app. Long libvirt work runs here, never in a request."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtstorage.settings")

app = Celery("virtstorage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(related_name="upload_job")  # volumes.upload_job: the upload job, expiry


@signals.worker_init.connect
def keep_database_connections(**_kwargs) -> None:
    """Reuse a worker process's database connection across its tasks (WORKER_DB_CONN_MAX_AGE, with
    CELERY_DB_REUSE_MAX so that Celery's Django fixup does not close it around each task): a job then costs no
    connect (on PostgreSQL a TCP connection and its authentication), and on SQLite no WAL checkpoint when the
    last connection closes. A job's start (jobs.runner.run_job) drops a connection too old or broken, and the
    health check catches a database restarted in between. Set before the pool's processes fork, so each
    inherits it; the connections themselves are made in each process."""
    from django.conf import settings

    for database in settings.DATABASES.values():
        database.get("OPTIONS", {}).pop("pool", None)  # the web's pool: its threads would not survive the fork
        database["CONN_MAX_AGE"] = settings.WORKER_DB_CONN_MAX_AGE
        database["CONN_HEALTH_CHECKS"] = True
