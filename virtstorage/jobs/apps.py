from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "virtstorage.jobs"
    label = "jobs"
