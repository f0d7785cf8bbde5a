"""The OpenAPI schema's own parts: the bearer token scheme, and the error answers every operation may give
(in the API's one error shape), so a client and a schema checker know them all."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "errors"],
    "properties": {
        "code": {"type": "string", "description": "Stable: invalid, not_found, permission_denied, "
                                                  "not_authenticated, authentication_failed, job_conflict, "
                                                  "queue_unavailable, …"},
        "message": {"type": "string"},
        "errors": {"type": "object", "description": "Field by field (non_field_errors: the whole request).",
                   "additionalProperties": {"type": "array", "items": {
                       "type": "object", "required": ["message", "code"],
                       "properties": {"message": {"type": "string"}, "code": {"type": "string"}}}}},
    },
}
ERRORS = {
    "400": "The data is refused: errors says why, field by field.",
    "401": "No token or session, or a token that is unknown, revoked or expired.",
    "403": "Your role does not allow this here.",
    "404": "Not there, or not yours to see.",
    "405": "Not with this method.",
    "406": "Not in a format the API answers in.",
    "409": "A job holds the volume or pool, or the object is in the wrong state.",
    "415": "The body is not JSON or form data.",
    "503": "The job queue (Redis) is down: nothing was started.",
}
WRITE_ONLY_ERRORS = {"400", "409", "415", "503"}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.BearerTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A personal API token (make one at /accounts/tokens/)."}


def error_responses(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: every operation lists the errors it may answer, with the Error schema."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path in result.get("paths", {}).values():
        for method, op in path.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            for code, text in ERRORS.items():
                if code in WRITE_ONLY_ERRORS and method == "get" and code != "400":
                    continue
                responses.setdefault(code, {"description": text, "content": {"application/json": {"schema": ref}}})
    return result

