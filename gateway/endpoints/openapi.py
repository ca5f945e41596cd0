"""``GET /openapi.json``: the HTTP API as an OpenAPI 3.1 document, and ``GET /docs`` rendering it.

The document is built here, next to the routes, from the same error table the handlers answer
with; a schemathesis run against a live gateway keeps it true. The WebSocket endpoints are
described by docs/protocol.md (OpenAPI has no words for them). ``/docs`` is Swagger UI from the
pinned ``swagger-ui-bundle-v2`` package, served by the gateway itself: no CDN.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from gateway.endpoints.pages import page
from pushgate.core.errors import JSON_RPC_ONLY, ErrorKind
from pushgate.core.wire import MAX_URL_LENGTH

Schema = dict[str, Any]

_REQUEST_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
_CHANNEL: Schema = {
    "type": "string",
    "pattern": "^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.-]{1,128}$",
    "description": "<namespace>:<name>",
}
_URL: Schema = {"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH}
_STATUS: Schema = {"type": "string", "enum": ["queued", "running", "done", "failed"]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    """The error responses of an operation, each with the codes the table gives its status."""
    responses: dict[str, Schema] = {}
    for status in (*statuses, 500):
        codes = sorted(
            k.code for k in ErrorKind if k.http_status == status and k not in JSON_RPC_ONLY
        )
        response = _json(_ref("Error"), f"one of: {', '.join(codes)}")
        if status == 429:
            retry = {"schema": {"type": "integer", "minimum": 1}, "description": "seconds"}
            response["headers"] = {"Retry-After": retry}
        responses[str(status)] = response
    return responses


def _components() -> Schema:
    http_codes = sorted(kind.code for kind in ErrorKind if kind not in JSON_RPC_ONLY)
    error_body = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": http_codes},
            "message": {"type": "string"},
        },
    }
    return {
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": error_body}},
            "Submission": {
                "type": "object",
                "required": ["url"],
                # null, like leaving it out: the gateway makes an unguessable one
                "properties": {
                    "url": _URL,
                    "request_id": {**_REQUEST_ID, "type": ["string", "null"]},
                },
            },
            "Job": {
                "type": "object",
                "required": ["request_id", "url", "status", "channel", "ws_url"],
                "properties": {
                    "request_id": _REQUEST_ID,
                    "url": {"type": "string"},
                    "status": _STATUS,
                    "channel": {"type": "string"},
                    "ws_url": {"type": "string"},
                    "subscribe_token": {"type": "string"},
                },
            },
            "JobState": {
                "type": "object",
                "required": ["request_id", "url", "status"],
                "properties": {
                    "request_id": _REQUEST_ID,
                    "url": {"type": "string"},
                    "status": _STATUS,
                    "result": {"type": "object"},
                    "error": {"type": "object"},
                },
            },
        },
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "subscribeToken": {"type": "apiKey", "in": "query", "name": "token"},
        },
    }


def _jobs() -> dict[str, Schema]:
    request_id = {"name": "request_id", "in": "path", "required": True, "schema": _REQUEST_ID}
    body = {"required": True, "content": {"application/json": {"schema": _ref("Submission")}}}
    url_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["url"], "properties": {"url": _URL}}
            }
        },
    }
    accepted = {
        "type": "object",
        "required": ["status", "request_id"],
        "properties": {"status": {"const": "accepted"}, "request_id": _REQUEST_ID},
    }
    return {
        "/jobs": {
            "post": {
                "summary": "Submit a URL to scrape",
                "security": [{"bearer": []}, {}],
                "requestBody": body,
                "responses": {
                    "202": _json(_ref("Job"), "queued"),
                    "200": _json(_ref("Job"), "the same request id and url again"),
                    **_errors(400, 401, 409, 413, 415, 422, 429, 503),
                },
            }
        },
        "/jobs/{request_id}": {
            "get": {
                "summary": "A job's status and outcome",
                "security": [{"bearer": []}, {"subscribeToken": []}, {}],
                "parameters": [
                    request_id,
                    {"name": "token", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(_ref("JobState"), "the job"),
                    **_errors(401, 403, 404, 422, 503),
                },
            }
        },
        "/urls/{request_id}": {
            "put": {
                "summary": "The original prototype's submit call",
                "security": [{"bearer": []}, {}],
                "parameters": [request_id],
                "requestBody": url_body,
                "responses": {
                    "201": _json(accepted, "queued"),
                    "200": _json(accepted, "it already exists with that url"),
                    **_errors(400, 401, 409, 413, 415, 422, 429, 503),
                },
            }
        },
    }


def _channels() -> dict[str, Schema]:
    position = {
        "type": "object",
        "required": ["offset", "epoch"],
        "properties": {"offset": {"type": "string"}, "epoch": {"type": "string"}},
    }
    publication = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"description": "any JSON value"}},
    }
    return {
        "/channels/{channel}/publications": {
            "post": {
                "summary": "Publish on a channel (server side)",
                "security": [{"apiKey": []}, {}],
                "parameters": [
                    {"name": "channel", "in": "path", "required": True, "schema": _CHANNEL},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": publication}},
                },
                "responses": {
                    "200": _json(position, "published"),
                    **_errors(400, 401, 403, 404, 413, 415, 422, 429, 503),
                },
            }
        },
        "/sse": {
            "get": {
                "summary": "A channel's publications as server-sent events",
                "security": [{"subscribeToken": []}, {}],
                "parameters": [
                    {"name": "channel", "in": "query", "required": True, "schema": _CHANNEL},
                    {"name": "token", "in": "query", "schema": {"type": "string"}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "the stream: `id: <offset>` and `data: {...}` events",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 403, 404, 422, 429, 503),
                },
            }
        },
    }


def _probes() -> dict[str, Schema]:
    status = {"type": "object", "required": ["status"], "properties": {"status": {}}}
    shard = {
        "type": "object",
        "required": ["index", "address", "up"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "address": {"type": "string", "description": "the shard's URL without password"},
            "up": {"type": "boolean"},
            "error": {"type": "string"},
        },
    }
    ready = {
        "type": "object",
        "required": ["status", "shards"],
        "properties": {"status": {}, "shards": {"type": "array", "items": shard}},
    }
    return {
        "/healthz": {
            "get": {
                "summary": "The process runs",
                "responses": {"200": _json(status, "alive"), **_errors()},
            }
        },
        "/readyz": {
            "get": {
                "summary": "The gateway can serve: Redis and every broker shard answer, "
                "each shard's pub/sub is up (some, with PUSHGATE_READY_WITH_SHARDS_DOWN)",
                "responses": {"200": _json(ready, "ready, and each broker shard"), **_errors(503)},
            }
        },
    }


def openapi_document() -> Schema:
    """The OpenAPI 3.1 description of every HTTP endpoint of a gateway."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pushgate",
            "version": version("pushgate"),
            "description": (
                'Push gateway HTTP API. Every error is `{"error": {"code", "message"}}`. '
                "The WebSocket endpoints (`/ws`, `/ws/jobs/{request_id}`) are described in "
                "docs/protocol.md."
            ),
        },
        "paths": {**_jobs(), **_channels(), **_probes()},
        "components": _components(),
    }


async def openapi_json(_request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())


ROUTES: list[BaseRoute] = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", page("api-docs.html"), methods=["GET"]),
    Mount("/docs/assets", app=StaticFiles(directory=Path(str(swagger_ui_path))), name="swagger"),
]
