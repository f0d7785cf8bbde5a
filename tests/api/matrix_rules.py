"""The authorization matrix's rules for the REST API (tests/test_authorization_matrix.py adds them), generated
from the API's router: each registered viewset gives its list and detail routes and one route per extra action,
and each route gets its expectations from what its object is and which role its action needs, as on the pages.
A viewset or action added without an entry here has no rule, and the matrix's test_every_url_has_a_rule fails.

Differences from the pages, by design: the anonymous get 401 (no login page to send a script to), and a
step the user's role does not allow on an object they can see is a 403, on one they cannot see a 404.
"""

from __future__ import annotations

from collections.abc import Callable

KINDS = ("anon", "noteam", "other", "member", "operator", "admin")
ANON = 401


def _kinds(noteam: int, other: int, member: int, operator: int, admin: int = 200) -> dict:
    return {"anon": ANON, "noteam": noteam, "other": other, "member": member, "operator": operator, "admin": admin}


ANY = _kinds(200, 200, 200, 200)
TEAM_MEMBER = _kinds(404, 404, 200, 200)
TEAM_OPERATOR = _kinds(404, 404, 403, 200)
TEAM_ADMIN = _kinds(404, 404, 403, 403)
OWNER = _kinds(404, 404, 200, 404)
REQUESTER = _kinds(404, 404, 200, 403, 403)
ADMIN = _kinds(403, 403, 403, 403)
HOST_ADMIN = _kinds(404, 403, 403, 403)  # an admin's step on a host: 404 for whoever does not see it
APPROVER = _kinds(403, 200, 403, 200)
NOT_ALLOWED = _kinds(405, 405, 405, 405, 405)  # GET of a POST-only action
PUBLIC = dict.fromkeys(KINDS, 200)


def _refused(allowed: dict) -> dict:
    return {kind: status for kind, status in allowed.items() if status != 200}


def audit_record(objects: dict):
    """An audit record, made on first use."""
    if "audit_record" not in objects:
        from audit.log import record

        objects["audit_record"] = record("matrix.check", target="the matrix")
    return objects["audit_record"]


def member_token(objects: dict):
    """The member's API token, made on first use."""
    if "token" not in objects:
        from django.contrib.auth import get_user_model

        from accounts import tokens

        objects["token"] = tokens.issue(get_user_model().objects.get(username="u-member"), "matrix")[0]
    return objects["token"]


def api_rules(*, request: Callable, vm: Callable) -> dict:
    """Rules keyed by URL name, as the matrix's RULES: (kwargs from the objects, GET, POST refusals or None)."""
    from api.urls import router

    def team(o):
        return o["pool"].grants.get().team

    # basename -> (the object of its detail routes, GET of the list, GET of the detail, POST on the list)
    objects = {
        "host": (lambda o: o["host"], ANY, {**TEAM_MEMBER, "other": 200}, _refused(ADMIN)),  # POST: add (admins)
        "pool": (lambda o: o["pool"], ANY, TEAM_MEMBER, _refused(ADMIN)),  # POST: define a pool (admins)
        "volume": (lambda o: o["volume"], ANY, TEAM_MEMBER, None),
        "job": (lambda o: o["job"], ANY, OWNER, None),
        "upload": (lambda o: o["upload"], ANY, OWNER, {**dict.fromkeys(KINDS, 400), "anon": ANON}),
        "request": (request, ANY, _kinds(404, 404, 200, 200), {**dict.fromkeys(KINDS, 404), "anon": ANON}),
        "approval": (request, APPROVER, _kinds(403, 404, 403, 200), None),
        "team": (team, ANY, TEAM_MEMBER, None),
        "audit": (audit_record, ADMIN, ADMIN, None),
        "vm": (vm, ANY, TEAM_MEMBER, None),
    }
    # (basename, action url name) -> POST expectations of the users it refuses
    actions = {
        **{("pool", verb): _refused(TEAM_ADMIN) for verb in ("start", "stop", "refresh", "autostart-on",
                                                             "autostart-off", "undefine", "build", "delete")},
        ("pool", "create-volume"): _refused(TEAM_OPERATOR),
        ("volume", "clone"): _refused(TEAM_MEMBER),
        **{("volume", op): _refused(TEAM_OPERATOR) for op in ("resize", "wipe", "delete")},
        ("job", "cancel"): _refused(OWNER),
        ("request", "edit"): _refused(REQUESTER),
        ("request", "withdraw"): _refused(REQUESTER),
        ("request", "retry"): _refused(TEAM_MEMBER),
        ("approval", "review"): {"anon": ANON, "noteam": 403, "member": 403, "other": 400},
        ("vm", "attach"): _refused(TEAM_OPERATOR),
        ("vm", "detach"): _refused(TEAM_OPERATOR),
        # Hosts: changed and tested by admins; the "other" team sees the host (a pool of theirs is on it): 403.
        **{("host", step): _refused(HOST_ADMIN) for step in ("edit", "delete", "check")},
        ("host", "sync"): _refused({**TEAM_MEMBER, "other": 200}),  # whoever sees the host, as its page
        # The image tools: check and convert as a clone (members of the team), import as the pool's admin.
        **{("volume", tool): _refused(TEAM_MEMBER) for tool in ("info", "check", "convert")},
        ("pool", "import"): _refused(TEAM_ADMIN),
    }
    rules: dict[str, tuple] = {
        "api:schema": (lambda o: {}, PUBLIC, None),
        "api:docs": (lambda o: {}, PUBLIC, None),
        "api:redoc": (lambda o: {}, PUBLIC, None),
        "tokens:list": (lambda o: {}, {**dict.fromkeys(KINDS, 200), "anon": 302}, None),
        "tokens:revoke": (lambda o: {"pk": member_token(o).pk}, {**dict.fromkeys(KINDS, 405), "anon": 302},
                          {"anon": 302, "noteam": 404, "other": 404, "operator": 404, "admin": 404}),
    }
    for _prefix, viewset, basename in router.registry:
        if basename not in objects:
            continue  # no rule: the matrix says which route lacks one
        obj, list_get, detail_get, list_post = objects[basename]
        rules[f"api:{basename}-list"] = (lambda o: {}, list_get, list_post)
        rules[f"api:{basename}-detail"] = (lambda o, obj=obj: {"pk": obj(o).pk}, detail_get, None)
        for extra in viewset.get_extra_actions():
            if (basename, extra.url_name) not in actions:
                continue
            kwargs = (lambda o, obj=obj: {"pk": obj(o).pk}) if extra.detail else (lambda o: {})
            get = {**NOT_ALLOWED, "anon": ANON}
            if basename == "approval":  # the queue refuses those who are no approver before the method
                get.update(noteam=403, member=403)
            rules[f"api:{basename}-{extra.url_name}"] = (kwargs, get, actions[(basename, extra.url_name)])
    return rules
