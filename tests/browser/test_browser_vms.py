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


def test_the_vm_page_suggests_the_pools_volumes_by_name_and_attaches_one(asgi_server, celery_worker, synced, member,
                                                                          local_host, tmp_path):
    """Typing part of a name on the VM page offers the chosen pool's volumes that hold it; one picked attaches. A
    refused name shows the form again, whose name field suggests there too."""
    pool, _ = synced
    with defined_vm(tmp_path) as vm:
        row = vm_row(local_host, vm)
        with browser_page(asgi_server.url) as page:
            log_in(page, member.username, "correct-horse-battery")
            page.goto(row.get_absolute_url())
            assert page.input_value("#id_pool") == str(pool.pk)  # the only pool the member may use: chosen
            page.fill("#id_volume", "thin")
            page.wait_for_function("document.querySelectorAll('#attach-volume-names option').length === 2")
            offered = page.eval_on_selector_all("#attach-volume-names option", "options => options.map(o => o.value)")
            assert offered == ["qcow2-thin.qcow2", "raw-thin.img"]
            page.fill("#id_volume", offered[1])
            page.click("#vm-attach button:has-text('Attach')")
            page.wait_for_url("**/jobs/*/")
            page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)
            assert vm.blklist(inactive=True) == {"vda": "raw-thin.img"}
            page.goto(row.get_absolute_url())  # a name that is nowhere: the form again, on a page of its own,
            page.fill("#id_volume", "nowhere.img")  # whose name field still suggests
            page.click("#vm-attach button:has-text('Attach')")
            page.wait_for_selector(f"text=Pool {pool.name} has no volume nowhere.img")
            page.fill("#id_volume", "qcow2-t")
            page.wait_for_function("document.querySelectorAll('#attach-volume-names option').length === 1")
