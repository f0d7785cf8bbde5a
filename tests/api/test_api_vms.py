"""VM disks through the API: attach a volume to a defined VM and detach it, each a job followed to its end; the
VM's libvirt definition is the witness."""

from __future__ import annotations

import pytest

from tests.api.conftest import post
from tests.api.helpers import succeeded
from tests.vms.helpers import vm_row
from tests.vms.machines import defined_vm

pytestmark = pytest.mark.django_db(transaction=True)


def test_attach_then_detach(synced, celery_worker, api, local_host, tmp_path) -> None:
    pool, _scratch = synced
    with defined_vm(tmp_path) as vm:
        row = vm_row(local_host, vm)
        assert api.get(f"/api/vms/{row.pk}/").json()["disks"] == []
        refused = post(api, f"/api/vms/{row.pk}/attach/", {"pool": pool.pk, "volume": "no-such.img"})
        assert refused.status_code == 400 and "no volume" in refused.json()["errors"]["volume"][0]["message"]
        succeeded(api, post(api, f"/api/vms/{row.pk}/attach/", {"pool": pool.pk, "volume": "qcow2-thin.qcow2",
                                                                 "bus": "virtio"}))
        assert vm.blklist(inactive=True) == {"vda": "qcow2-thin.qcow2"}
        assert [d["target"] for d in api.get(f"/api/vms/{row.pk}/").json()["disks"]] == ["vda"]
        unconfirmed = post(api, f"/api/vms/{row.pk}/detach/", {"target": "vda", "confirm": "vdb"})
        assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()["errors"]
        succeeded(api, post(api, f"/api/vms/{row.pk}/detach/", {"target": "vda", "confirm": "vda"}))
        assert vm.blklist(inactive=True) == {}
