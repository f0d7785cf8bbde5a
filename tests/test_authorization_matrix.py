"""The authorization matrix, generated from the URL conf: every named URL × every kind of user.

Kinds of user: anonymous; a user with an account but no team ("noteam"); a member of another team
("other"); a member and an operator of the team that may use pool 1; a site-wide admin. Each URL has a
rule below saying what each kind gets on GET and on POST. A URL added without a rule fails
``test_every_url_has_a_rule``. A refused POST must change nothing: the database rows that matter and
libvirt's view of the pool are compared before and after.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.api.matrix_rules import api_rules
from tests.conftest import virsh

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = ("anon", "noteam", "other", "member", "operator", "admin")
LOGIN = 302  # LoginRequiredMiddleware sends the anonymous to the login page

# What each kind gets, by the shape of the view:
PUBLIC = dict.fromkeys(KINDS, 200)
ANY_ACCOUNT = {"anon": LOGIN, "noteam": 200, "other": 200, "member": 200, "operator": 200, "admin": 200}
TEAM_MEMBER = {"anon": LOGIN, "noteam": 404, "other": 404, "member": 200, "operator": 200, "admin": 200}
TEAM_OPERATOR = {"anon": LOGIN, "noteam": 404, "other": 404, "member": 403, "operator": 200, "admin": 200}
OWNER = {"anon": LOGIN, "noteam": 404, "other": 404, "member": 200, "operator": 404, "admin": 200}
ADMIN_ONLY = {"anon": LOGIN, "noteam": 403, "other": 403, "member": 403, "operator": 403, "admin": 200}
POST_ONLY = {"anon": LOGIN, "noteam": 405, "other": 405, "member": 405, "operator": 405, "admin": 405}  # GET


def _with(base: dict, **changes: int) -> dict:
    return {**base, **changes}


def _refused(allowed: dict) -> dict:
    """The POST expectations of a view: the kinds it refuses, and how."""
    return {kind: status for kind, status in allowed.items() if status != 200}


# url name -> (kwargs from the objects, GET expectations, POST expectations or None for no POST check).
# POST expectations list only refusals (the users who may POST get None: their outcome is the features'
# own tests' business); a refusal must leave everything as it was.
RULES: dict[str, tuple] = {
    "dashboard": (lambda o: {}, ANY_ACCOUNT, None),
    "login": (lambda o: {}, PUBLIC, None),
    "logout": (lambda o: {}, POST_ONLY, None),
    "set_language": (lambda o: {}, dict.fromkeys(KINDS, 405), None),  # POST only, also before logging in
    "password_change": (lambda o: {}, ANY_ACCOUNT, {"anon": LOGIN}),  # one's own password
    "people": (lambda o: {}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "people_password": (lambda o: {"pk": o["account"].pk}, POST_ONLY, _refused(ADMIN_ONLY)),
    "people_active": (lambda o: {"pk": o["account"].pk}, POST_ONLY, _refused(ADMIN_ONLY)),
    "favicon": (lambda o: {}, dict.fromkeys(KINDS, 301), None),  # to the static icon, for pages that name none
    "javascript-catalog": (lambda o: {}, PUBLIC, None),  # the upload page's strings, in the page's language
    "hosts:add": (lambda o: {}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "hosts:detail": (lambda o: {"pk": o["host"].pk}, _with(TEAM_MEMBER, other=200), None),
    "hosts:status": (lambda o: {"pk": o["host"].pk}, _with(TEAM_MEMBER, other=200), None),
    "hosts:edit": (lambda o: {"pk": o["host"].pk}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "hosts:delete": (lambda o: {"pk": o["host"].pk}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "hosts:test": (lambda o: {"pk": o["host"].pk}, POST_ONLY, _refused(ADMIN_ONLY)),
    "hosts:sync": (lambda o: {"pk": o["host"].pk}, POST_ONLY, {"anon": LOGIN, "noteam": 404}),
    "pools:detail": (lambda o: {"pk": o["pool"].pk}, TEAM_MEMBER, None),
    "pools:volumes": (lambda o: {"pk": o["pool"].pk}, TEAM_MEMBER, None),
    "pools:card": (lambda o: {"pk": o["pool"].pk}, TEAM_MEMBER, None),
    "pools:live": (lambda o: {"pk": o["pool"].pk}, TEAM_MEMBER, None),
    "pools:action": (lambda o: {"pk": o["pool"].pk, "action": "stop"}, POST_ONLY, _refused(ADMIN_ONLY)),
    "pools:build": (lambda o: {"pk": o["pool"].pk}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "pools:delete": (lambda o: {"pk": o["pool"].pk}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "pools:policy": (lambda o: {"pk": o["pool"].pk}, POST_ONLY, _refused(ADMIN_ONLY)),
    "pools:define": (lambda o: {"host_pk": o["host"].pk}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "volumes:detail": (lambda o: {"pk": o["volume"].pk}, TEAM_MEMBER, None),
    "volumes:team": (lambda o: {"pk": o["volume"].pk}, POST_ONLY, _refused(ADMIN_ONLY)),
    "volumes:by_name": (lambda o: {"pool_pk": o["volume"].pool_id, "name": o["volume"].name},
                        _with(TEAM_MEMBER, member=302, operator=302, admin=302), None),  # to the volume's page
    "volumes:create": (lambda o: {"pool_pk": o["pool"].pk}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    "volumes:backing_options": (lambda o: {"pool_pk": o["pool"].pk}, TEAM_MEMBER, None),
    # ?pool= names the pool: a pool the user may not see gives no names (tests/vms/test_attach_names.py)
    "volumes:name_options": (lambda o: {}, ANY_ACCOUNT, None),
    "volumes:clone": (lambda o: {"pk": o["volume"].pk}, TEAM_MEMBER, _refused(TEAM_MEMBER)),
    "volumes:resize": (lambda o: {"pk": o["volume"].pk}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    "volumes:delete": (lambda o: {"pk": o["volume"].pk}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    "volumes:wipe": (lambda o: {"pk": o["volume"].pk}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    # The quarantined volume answers 409 to whoever may download: the refusal comes after the access check.
    "volumes:download": (lambda o: {"pk": o["unsafe"].pk}, {**TEAM_MEMBER, "member": 409, "operator": 409,
                                                            "admin": 409}, None),
    "volumes:upload_new": (lambda o: ({"pool": o["pool"].pk}, {}), TEAM_MEMBER, None),
    "volumes:upload_create": (lambda o: {}, POST_ONLY, {"anon": LOGIN, "noteam": 400, "other": 400}),
    "volumes:upload": (lambda o: {"pk": o["upload"].pk}, OWNER, None),
    "volumes:upload_chunks": (lambda o: {"pk": o["upload"].pk}, POST_ONLY,  # PUT only
                              {"anon": LOGIN, "noteam": 405, "other": 405, "operator": 405}),
    "volumes:upload_holes": (lambda o: {"pk": o["upload"].pk}, POST_ONLY, _refused(OWNER)),
    "volumes:upload_complete": (lambda o: {"pk": o["upload"].pk}, POST_ONLY, _refused(OWNER)),
    # The image tools (qemu-img): the Image panel for whoever sees the volume; check and convert as a clone
    # (members of the team); importing a host file into a pool is an admin's ("manage").
    "volumes:image_panel": (lambda o: {"pk": o["volume"].pk}, TEAM_MEMBER, None),
    # Reading it with qemu-img (the info job the panel shows): whoever sees the volume, as the panel.
    "volumes:image_info": (lambda o: {"pk": o["volume"].pk}, POST_ONLY, _refused(TEAM_MEMBER)),
    "volumes:image_check": (lambda o: {"pk": o["volume"].pk}, POST_ONLY, _refused(TEAM_MEMBER)),
    "volumes:image_convert": (lambda o: {"pk": o["volume"].pk}, TEAM_MEMBER, _refused(TEAM_MEMBER)),
    "volumes:image_import": (lambda o: {"pool_pk": o["pool"].pk}, _with(TEAM_OPERATOR, operator=403),
                             _refused(_with(TEAM_OPERATOR, operator=403))),
    "jobs:list": (lambda o: {}, ANY_ACCOUNT, None),
    "jobs:detail": (lambda o: {"pk": o["job"].pk}, OWNER, None),
    "jobs:progress": (lambda o: {"pk": o["job"].pk}, OWNER, None),
    "jobs:events": (lambda o: {"pk": o["job"].pk}, OWNER, None),
    "jobs:cancel": (lambda o: {"pk": o["job"].pk}, POST_ONLY, _refused(OWNER)),
    "audit:list": (lambda o: {}, ADMIN_ONLY, None),
    "audit:export": (lambda o: {}, ADMIN_ONLY, None),
    # Provisioning requests: the member's pending request in the team's pool (_request). The requester and the
    # team's approvers see it; only the requester changes it; any approver (team-b's operator too) has a queue.
    "requests:list": (lambda o: {}, ANY_ACCOUNT, None),
    "requests:pick_pool": (lambda o: {}, ANY_ACCOUNT, None),
    "requests:new": (lambda o: {"pool_pk": o["pool"].pk}, TEAM_MEMBER, _refused(TEAM_MEMBER)),
    "requests:detail": (lambda o: {"pk": _request(o).pk}, TEAM_MEMBER, None),
    "requests:state": (lambda o: {"pk": _request(o).pk}, TEAM_MEMBER, None),
    "requests:edit": (lambda o: {"pk": _request(o).pk}, _with(TEAM_MEMBER, operator=403, admin=403),
                      _refused(_with(TEAM_MEMBER, operator=403, admin=403))),
    "requests:withdraw": (lambda o: {"pk": _request(o).pk}, POST_ONLY,
                          _refused(_with(TEAM_MEMBER, operator=403, admin=403))),
    "requests:retry": (lambda o: {"pk": _request(o).pk}, POST_ONLY, _refused(TEAM_MEMBER)),
    "requests:queue": (lambda o: {}, _with(TEAM_OPERATOR, noteam=403, other=200), None),
    "requests:review": (lambda o: {}, POST_ONLY, {"anon": LOGIN, "noteam": 403, "member": 403, "other": 302}),
    "notifications:list": (lambda o: {}, ANY_ACCOUNT, None),
    "notifications:bell": (lambda o: {}, ANY_ACCOUNT, None),  # (a logged-out tab's htmx poll gets 286)
    "notifications:read_all": (lambda o: {}, POST_ONLY, {"anon": LOGIN}),
    # Only its owner opens a notification; even an admin gets 404 for someone else's.
    "notifications:open": (lambda o: {"pk": o["notification"].pk}, POST_ONLY,
                           {"anon": LOGIN, "noteam": 404, "other": 404, "operator": 404, "admin": 404}),
    # VMs (vms/): team-a's VM on the host (_vm) with disk vdb on the team's volume. A host's VM list is open to
    # whoever sees the host (team-b's member sees it empty); the VM's pages to its team; disks change by its
    # operators, the volume side by those who may create in the volume's pool; the owning team by admins.
    "vms:list": (lambda o: {"host_pk": o["host"].pk}, _with(TEAM_MEMBER, other=200), None),
    "vms:detail": (lambda o: {"pk": _vm(o).pk}, TEAM_MEMBER, None),
    "vms:attach": (lambda o: {"pk": _vm(o).pk}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    "vms:detach": (lambda o: {"pk": _vm(o).pk, "target": "vdb"}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    "vms:team": (lambda o: {"pk": _vm(o).pk}, POST_ONLY, _refused(ADMIN_ONLY)),
    "vms:attach_volume": (lambda o: {"volume_pk": o["volume"].pk}, TEAM_OPERATOR, _refused(TEAM_OPERATOR)),
    # Unmanaged storage (vms/views_unmanaged.py): the report, adopt and the switch of a disk to its copy are
    # admins' work, whoever owns the VM (_adopted: an adopt job of team-a's VM disk vdb).
    "vms:unmanaged": (lambda o: {"host_pk": o["host"].pk}, ADMIN_ONLY, None),
    "vms:adopt": (lambda o: {"host_pk": o["host"].pk}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "vms:switch": (lambda o: {"pk": _vm(o).pk, "target": "vdb", "job_pk": _adopted(o).pk}, ADMIN_ONLY,
                   _refused(ADMIN_ONLY)),
    "teams:list": (lambda o: {}, ADMIN_ONLY, None),
    "teams:create": (lambda o: {}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "teams:mine": (lambda o: {}, ANY_ACCOUNT, None),
    "teams:detail": (lambda o: {"pk": o["pool"].grants.get().team_id}, ADMIN_ONLY, None),
    "teams:edit": (lambda o: {"pk": o["pool"].grants.get().team_id}, ADMIN_ONLY, _refused(ADMIN_ONLY)),
    "teams:member_set": (lambda o: {"pk": o["pool"].grants.get().team_id}, POST_ONLY, _refused(ADMIN_ONLY)),
    "teams:member_remove": (lambda o: {"pk": o["pool"].grants.get().team_id, "user_pk": o["job"].created_by_id},
                            POST_ONLY, _refused(ADMIN_ONLY)),
    "teams:grant_set": (lambda o: {"pk": o["pool"].grants.get().team_id}, POST_ONLY, _refused(ADMIN_ONLY)),
    "teams:grant_revoke": (lambda o: {"pk": o["pool"].grants.get().team_id, "pool_pk": o["pool"].pk}, POST_ONLY,
                           _refused(ADMIN_ONLY)),
}


def _request(objects: dict):
    """The member's pending provisioning request in the team's pool, made on first use."""
    if "request" not in objects:
        from django.contrib.auth import get_user_model

        from accounts.models import Team
        from provisioning.models import ProvisioningRequest

        objects["request"] = ProvisioningRequest.objects.create(
            team=Team.objects.get(name="team-a"), pool=objects["pool"], name="asked.img", capacity=2**20,
            requested_by=get_user_model().objects.get(username="u-member"), purpose="the matrix")
    return objects["request"]


def _vm(objects: dict):
    """team-a's VM (inventory rows only) with the team's volume as disk vdb, made on first use."""
    if "vm" not in objects:
        from accounts.models import Team
        from hosts.models import Domain, DomainDisk

        vm = Domain.objects.create(host=objects["host"], name="vm-a", uuid="6f1c3a52-0000-4000-8000-00000000000a",
                                   state="shut off", team=Team.objects.get(name="team-a"))
        DomainDisk.objects.create(host=vm.host, machine=vm, domain=vm.name, target="vdb", source_type="volume",
                                  pool_name=objects["pool"].name, volume_name=objects["volume"].name, bus="virtio")
        objects["vm"] = vm
    return objects["vm"]


def _adopted(objects: dict):
    """A succeeded adopt job of team-a's VM disk vdb (vms/adopt.py), made on first use."""
    if "adopted" not in objects:
        from jobs.models import Job

        vm = _vm(objects)
        objects["adopted"] = Job.objects.create(
            kind="vm-adopt", host=vm.host, pool=objects["pool"], pool_name=objects["pool"].name,
            volume_name="adopted.img", state=Job.State.SUCCEEDED,
            params={"uuid": vm.uuid, "domain": vm.name, "target": "vdb", "path": "/nowhere/vdb.img"})
    return objects["adopted"]


# The REST API's routes and the token pages: rules generated from the API's router (tests/api/matrix_rules.py).
RULES.update(api_rules(request=_request, vm=_vm))


def _named_urls(patterns=None, namespace: str | None = None):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's own admin: staff only, tested by Django
            yield from _named_urls(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_every_url_has_a_rule() -> None:
    missing = sorted(set(_named_urls()) - set(RULES))
    assert missing == [], f"URLs without an authorization rule: {missing}"


@pytest.fixture
def world(local_host, synced, tmp_path_factory):
    """Pool 1 (the team's), a volume, a quarantined volume, a job and an upload of the member; pool 2 of
    another team; one client per kind of user."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Team
    from accounts.roles import ADMIN, MEMBER, grant
    from accounts.teams import join
    from inventory.sync import sync_host
    from jobs.models import Job
    from pools.models import PoolGrant, StoragePool
    from tests.conftest import make_scratch_pool
    from volumes.models import Upload, Volume

    pool, _scratch = synced
    other_scratch = make_scratch_pool(tmp_path_factory.mktemp("pools"))
    sync_host(local_host, pool_names=[other_scratch.name])
    other_pool = StoragePool.objects.get(host=local_host, name=other_scratch.name)
    team, rivals = Team.objects.create(name="team-a"), Team.objects.create(name="team-b")
    PoolGrant.objects.create(team=team, pool=pool)
    PoolGrant.objects.create(team=rivals, pool=other_pool)
    users = {}
    for kind in KINDS[1:]:
        user = get_user_model().objects.create_user(username=f"u-{kind}", password="correct-horse-battery")
        grant(user, ADMIN if kind == "admin" else MEMBER)
        if kind in ("member", "operator"):
            join(user, team, Membership.Role.OPERATOR if kind == "operator" else Membership.Role.MEMBER)
        elif kind == "other":
            join(user, rivals, Membership.Role.OPERATOR)
        users[kind] = user
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    unsafe = Volume.objects.get(pool=pool, name="raw-prealloc.img")
    Volume.objects.filter(pk=unsafe.pk).update(unsafe_reason="Quarantined for the matrix.")
    job = Job.objects.create(kind="create", host=local_host, pool=pool, volume_name="made.img",
                             created_by=users["member"], state=Job.State.SUCCEEDED)
    from notifications.models import Notification

    notification = Notification.objects.create(user=users["member"], text="For the member only", url="/jobs/")
    upload = Upload.objects.create(created_by=users["member"], pool=pool, volume_name="up.img", size=1,
                                   capacity=1, state=Upload.State.DONE)
    clients = {"anon": Client()}
    for kind, user in users.items():
        clients[kind] = Client()
        clients[kind].force_login(user)
    try:
        yield {"host": local_host, "pool": pool, "volume": volume, "unsafe": unsafe, "job": job,
               "upload": upload, "notification": notification, "clients": clients, "scratch": _scratch,
               "account": users["member"]}
    finally:
        virsh("pool-destroy", other_scratch.name, check=False)
        virsh("pool-undefine", other_scratch.name, check=False)


def _url(name: str, objects: dict) -> str:
    kwargs = RULES[name][0](objects)
    if isinstance(kwargs, tuple):  # (query, path kwargs)
        query, kwargs = kwargs
        return reverse(name, kwargs=kwargs) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return reverse(name, kwargs=kwargs)


def _state(objects: dict) -> str:
    """A digest of what a POST could change: the app's rows and libvirt's view of the team's pool."""
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken, Membership, Team
    from hosts.models import Domain, DomainDisk, Host
    from jobs.models import Job
    from notifications.models import Notification
    from pools.models import PoolGrant, StoragePool
    from provisioning.models import ProvisioningRequest
    from volumes.models import Upload, Volume

    rows = {model.__name__: sorted(map(repr, model.objects.values_list()))
            for model in (Host, StoragePool, Volume, Job, Upload, Team, Membership, PoolGrant, ProvisioningRequest,
                          Notification, Domain, DomainDisk, ApiToken)}
    rows["accounts"] = sorted(map(repr, get_user_model().objects.values_list("username", "password", "is_active",
                                                                             "is_staff", "is_superuser")))
    rows["libvirt"] = virsh("vol-list", "--details", objects["pool"].name)
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def test_the_matrix(world) -> None:
    problems = []
    for name in sorted(RULES):
        url = _url(name, world)
        get_rule, post_rule = RULES[name][1], RULES[name][2]
        for kind in KINDS:
            status = world["clients"][kind].get(url).status_code
            if status != get_rule[kind]:
                problems.append(f"GET {name} as {kind}: {status}, expected {get_rule[kind]}")
        for kind, expected in (post_rule or {}).items():
            before = _state(world)
            status = world["clients"][kind].post(url, {"confirm": "x", "name": "m.img", "capacity": "1M"}).status_code
            if status != expected:
                problems.append(f"POST {name} as {kind}: {status}, expected {expected}")
            if _state(world) != before:
                problems.append(f"POST {name} as {kind} was refused ({status}) but changed something")
    assert not problems, "\n".join(problems)
