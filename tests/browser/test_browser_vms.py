"""VM disks in Debian's chromium: attach a volume to a VM from the volume's page, see it in the VM's disk list, then
detach it from there."""

from __future__ import annotations

import pytest

from tests.browser.browser import browser_page, log_in
from tests.vms.helpers import vm_row
from tests.vms.machines import defined_vm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_attach_from_the_volume_page_then_detach_from_the_vm_page(asgi_server, celery_worker, synced, member,
                                                                  local_host, tmp_path):
    pool, scratch = synced
    volume = pool.volumes.get(name="qcow2-thin.qcow2")
    with defined_vm(tmp_path) as vm:
        row = vm_row(local_host, vm)  # before playwright's event loop runs in this thread
        with browser_page(asgi_server.url) as page:
            log_in(page, member.username, "correct-horse-battery")
            page.goto(volume.get_absolute_url())
            page.select_option("#id_attach_vm", label=f"{vm.name} (shut off)")
            page.select_option("#id_attach_bus", "scsi")
            page.click("#volume-attach button:has-text('Attach')")
            page.wait_for_url("**/jobs/*/")
            page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)
            assert f"sda attached persistently on {vm.name}" in page.inner_text(".progress")
            assert vm.blklist(inactive=True) == {"sda": "qcow2-thin.qcow2"}

            page.goto(row.get_absolute_url())
            disk_row = page.locator("#vm-disks tr[data-target=sda]")
            assert "managed" in disk_row.inner_text() and "scsi" in disk_row.inner_text()
            disk_row.locator("a:has-text('qcow2-thin.qcow2')").click()  # managed: linked to its volume
            page.wait_for_url(f"**{volume.get_absolute_url()}")
            page.go_back()
            page.click("#vm-disks tr[data-target=sda] >> text=Detach")
            assert "The volume and its data stay" in page.inner_text("main")
            page.click("button:has-text('Detach sda')")
            page.wait_for_url("**/jobs/*/")
            page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)
            assert vm.blklist(inactive=True) == {}
            page.goto(row.get_absolute_url())
            assert page.locator("#vm-disks tr[data-target=sda]").count() == 0
            assert "No disks." in page.inner_text("#vm-disks")
