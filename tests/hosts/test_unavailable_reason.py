"""One answer, from what the app recorded, to "is libvirt on this host worth asking now?": the pool pages, the
define form and the image tools all read hosts.status.unavailable_reason."""

from __future__ import annotations

import datetime

import pytest

from hosts.models import Host
from hosts.status import unavailable_reason
from volumes import image_files

pytestmark = pytest.mark.django_db

CHECKED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, ""),
    ({"status": Host.Status.ONLINE, "last_checked_at": CHECKED}, ""),
    ({"enabled": False}, "Host kvm is disabled."),
    ({"enabled": False, "disabled_reason": "its URI is not allowed"}, "Host kvm is disabled: its URI is not allowed"),
    ({"status": Host.Status.UNREACHABLE, "last_error": "no route"},
     "Host kvm was unreachable at its last check: no route"),
    ({"status": Host.Status.UNREACHABLE, "last_error": "no route", "last_checked_at": CHECKED},
     "Host kvm was unreachable at its last check (2026-01-02 03:04:05 UTC): no route"),
])
def test_why_a_host_is_not_worth_asking(fields, expected):
    host = Host.objects.create(name="kvm", uri="qemu:///system", **fields)
    assert unavailable_reason(host) == expected
    assert image_files.unavailable_reason(host) == expected  # the image tools add only "another machine"


def test_the_image_tools_refuse_another_machine_first():
    host = Host.objects.create(name="far", uri="qemu+ssh://root@far.example/system", enabled=False)
    assert "another machine" in image_files.unavailable_reason(host)
