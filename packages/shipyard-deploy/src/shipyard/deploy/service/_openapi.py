"""The service's OpenAPI document, made to say what the service answers.

BentoML generates the document (``/docs.json``); three things in it do not match the service:

- a 400's ``detail`` is declared a string, but BentoML answers a validation error with pydantic's
  list of errors (``[{"type", "loc", "msg", "url"}]``);
- the request body is not marked required, but ``/predict`` without a body is a 400;
- the front door's own answers (401 without the key, 413 over the size limit, 415 for a body that
  is not JSON, the ``x-model-version`` header) and the API-key schemes are missing.

:func:`describe` corrects the generated document (:class:`~shipyard.deploy.service._guard.Guard`
applies it as the document is served), so OpenAPI tools such as schemathesis, client generators
and the docs page see the truth. It only adds and narrows: every path BentoML lists stays.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

__all__ = ["describe"]

_REF = "#/components/schemas/{}"
VALIDATION_ITEM = "ValidationErrorItem"
REFUSAL = "RequestRefused"
_ITEM_SCHEMA = {
    "type": "object",
    "title": VALIDATION_ITEM,
    "description": "one problem with the request, as pydantic reports it",
    "required": ["type", "loc", "msg"],
    "properties": {
        "type": {"type": "string", "title": "Error type", "description": "e.g. missing, float_type"},
        "loc": {
            "type": "array",
            "title": "Location",
            "description": 'where in the body, e.g. ["rows", 0, "mean radius"]',
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "msg": {"type": "string", "title": "Message"},
        "url": {"type": "string", "title": "Documentation"},
    },
}
_REFUSAL_SCHEMA = {
    "type": "object",
    "title": REFUSAL,
    "description": "a request the service refused before reading it",
    "required": ["error", "fix"],
    "properties": {
        "error": {"type": "string", "title": "Message"},
        "fix": {"type": "string", "title": "How to fix it"},
    },
}


def _refusal(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(REFUSAL)}}},
    }


def describe(
    document: dict[str, Any], *, api_paths: Iterable[str], auth: bool, max_request_bytes: int
) -> dict[str, Any]:
    """A copy of BentoML's generated ``document`` that matches the service's answers."""
    doc = copy.deepcopy(document)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas[VALIDATION_ITEM] = _ITEM_SCHEMA
    schemas[REFUSAL] = _REFUSAL_SCHEMA
    invalid = schemas.get("InvalidArgument")
    if isinstance(invalid, dict):  # the 400's schema: BentoML's name, pydantic's list
        invalid.setdefault("properties", {})["detail"] = {
            "type": "array",
            "title": "Error Detail",
            "description": "every problem found in the request",
            "items": {"$ref": _REF.format(VALIDATION_ITEM)},
        }
    if auth:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    for route in api_paths:
        operation = doc.get("paths", {}).get(route, {}).get("post")
        if isinstance(operation, dict):
            _describe_api(operation, auth=auth, max_request_bytes=max_request_bytes)
    return doc


def _describe_api(operation: dict[str, Any], *, auth: bool, max_request_bytes: int) -> None:
    if isinstance(operation.get("requestBody"), dict):
        operation["requestBody"]["required"] = True
    responses = operation.setdefault("responses", {})
    ok = responses.get("200") or responses.get(200)
    if isinstance(ok, dict):
        ok.setdefault("headers", {})["x-model-version"] = {
            "description": "the model version that made the predictions",
            "schema": {"type": "string"},
        }
    responses["413"] = _refusal(f"Request body larger than {max_request_bytes} bytes")
    responses["415"] = _refusal("Request body is not application/json")
    if auth:
        responses["401"] = _refusal("Missing or wrong API key")
        operation["security"] = [{"bearer": []}, {"apiKey": []}]
