from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "virtstorage.hosts"
    label = "hosts"
