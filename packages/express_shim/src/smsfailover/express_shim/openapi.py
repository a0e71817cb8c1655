"""The origin's OpenAPI 3.0 description (/openapi.json): every route, with schemas strict enough for schemathesis.

Written by hand rather than generated: the contract (CONTRACT §3) is the source of truth, and a literal document
is easier to hold against it than decorators spread over the handlers. Every operation lists its statuses and
falls back to the error envelope for anything else (`default`).
"""

from __future__ import annotations

from typing import Any

WORKSPACE_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
STATUSES = ["queued", "sent", "delivered", "failed", "undelivered", "unknown"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_NULLABLE_STRING: dict[str, Any] = {"type": "string", "nullable": True}
_NULLABLE_NUMBER: dict[str, Any] = {"type": "number", "nullable": True}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response = _json(_ERROR, description)
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "bad request (invalid JSON, missing or invalid Idempotency-Key)",
        401: "no, bad or expired token",
        403: "token for another workspace, or the wrong role",
        404: "not found",
        409: "the idempotency key is in flight",
        413: "body over 64 KiB",
        422: "validation failed",
        429: "rate limited",
        503: "provider or dependency unavailable",
    }
    out = {str(s): _error(texts[s], retry_after=s in (409, 429)) for s in statuses}
    out["default"] = _error("any other error, in the same envelope")
    return out


_WS_PARAM = {
    "name": "ws",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": WORKSPACE_PATTERN},
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "status",
        "endpoint",
        "idempotency_key",
        "provider_message_id",
        "segments",
        "encoding",
        "created_at",
        "requires_refresh",
        "ledger",
    ],
    "properties": {
        "id": {"type": "string", "pattern": "^msg_[0-9A-HJKMNP-TV-Z]{26}$"},
        "workspace_id": {"type": "string"},
        "to": {"type": "string"},
        "contact_id": _NULLABLE_STRING,
        "media_urls": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "status": {"type": "string", "enum": STATUSES},
        "endpoint": {"type": "string", "enum": ["origin", "edge"]},
        "idempotency_key": {"type": "string"},
        "provider_message_id": _NULLABLE_STRING,
        "segments": {"type": "integer", "minimum": 0},
        "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time", "nullable": True},
        "requires_refresh": {"type": "boolean"},
        "ledger": {"type": "string", "enum": ["edge", "local"]},
        "latency_ms": _NULLABLE_NUMBER,
        "error": {"nullable": True},
    },
}

_ENDPOINT_STATS: dict[str, Any] = {
    "type": "object",
    "required": ["healthy", "latency_ms", "checked_at", "window_s", "requests", "success_rate"],
    "properties": {
        "healthy": {"type": "boolean"},
        "latency_ms": _NULLABLE_NUMBER,
        "checked_at": {"type": "string", "format": "date-time", "nullable": True},
        "window_s": {"type": "integer"},
        "requests": {"type": "integer", "minimum": 0},
        "success_rate": _NULLABLE_NUMBER,
        "p50_ms": _NULLABLE_NUMBER,
        "p95_ms": _NULLABLE_NUMBER,
        "p99_ms": _NULLABLE_NUMBER,
    },
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["workspace_id", "sms_failover_enabled", "updated_at"],
    "properties": {
        "workspace_id": {"type": "string"},
        "sms_failover_enabled": {"type": "boolean"},
        "updated_at": {"type": "string", "format": "date-time", "nullable": True},
    },
}


def _send_operation() -> dict[str, Any]:
    request = {
        "type": "object",
        "required": ["to", "workspace_id"],
        "properties": {
            "to": {"type": "string", "pattern": r"^\+[1-9][0-9]{7,14}$", "example": "+16266635938"},
            "content": {"type": "string", "minLength": 1, "maxLength": 1600},
            "workspace_id": {"type": "string", "pattern": WORKSPACE_PATTERN},
            "contact_id": {"type": "string"},
            "media_urls": {
                "type": "array",
                "maxItems": 10,
                "items": {"type": "string", "format": "uri", "pattern": "^https://"},
            },
        },
    }
    return {
        "operationId": "sendMessage",
        "summary": "Send one SMS/MMS",
        "security": _BEARER,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            }
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {
            "201": _json(MESSAGE_SCHEMA, "sent (first time)"),
            "200": {
                **_json(MESSAGE_SCHEMA, "replay of a completed send"),
                "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
            },
            **_errors(400, 401, 403, 409, 413, 422, 429, 503),
        },
    }


def build_openapi(version: str) -> dict[str, Any]:
    list_schema = {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": MESSAGE_SCHEMA},
            "next_cursor": _NULLABLE_STRING,
        },
    }
    status_schema = {
        "type": "object",
        "required": [
            "workspace_id",
            "enabled",
            "ledger",
            "degraded",
            "endpoints",
            "failovers_15m",
            "unknown_15m",
            "breaker",
        ],
        "properties": {
            "workspace_id": {"type": "string"},
            "enabled": {"type": "boolean"},
            "ledger": {"type": "string", "enum": ["edge", "local"]},
            "degraded": {"type": "boolean"},
            "endpoints": {
                "type": "object",
                "required": ["origin", "edge"],
                "properties": {"origin": _ENDPOINT_STATS, "edge": _ENDPOINT_STATS},
            },
            "failovers_15m": {"type": "integer", "minimum": 0},
            "unknown_15m": {"type": "integer", "minimum": 0},
            "breaker": {"type": "object", "nullable": True},
            # an added field (issue 15): the last 20 edge sends, newest first, with their router's reason
            "failover_events": {
                "type": "array",
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["at", "reason", "message_id", "status"],
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "reason": _NULLABLE_STRING,
                        "message_id": {"type": "string"},
                        "status": {"type": "string"},
                    },
                },
            },
        },
    }
    health_schema = {
        "type": "object",
        "required": ["status", "endpoint", "version", "ledger"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "endpoint": {"type": "string", "enum": ["origin", "edge"]},
            "version": {"type": "string"},
            "ledger": {"type": "string", "enum": ["edge", "local"]},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "smsfailover origin", "version": version},
        "paths": {
            "/v1/messages": {
                "post": _send_operation(),
                "get": {
                    "operationId": "getMessageByIdempotencyKey",
                    "security": _BEARER,
                    "parameters": [
                        {
                            "name": "idempotency_key",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "responses": {
                        "200": _json(MESSAGE_SCHEMA, "the message (status may be unknown)"),
                        **_errors(400, 401, 403, 404, 409, 422, 429),
                    },
                },
            },
            "/v1/messages/{id}": {
                "get": {
                    "operationId": "getMessage",
                    "security": _BEARER,
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json(MESSAGE_SCHEMA, "the message"), **_errors(401, 403, 404, 429)},
                }
            },
            "/v1/health": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": _json(health_schema, "health"), "default": _error("error")},
                }
            },
            "/v1/workspaces/{ws}/messages": {
                "get": {
                    "operationId": "listMessages",
                    "security": _BEARER,
                    "parameters": [
                        _WS_PARAM,
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        },
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json(list_schema, "newest first"), **_errors(401, 403, 422)},
                }
            },
            "/v1/workspaces/{ws}/settings": {
                "get": {
                    "operationId": "getSettings",
                    "security": _BEARER,
                    "parameters": [_WS_PARAM],
                    "responses": {"200": _json(SETTINGS_SCHEMA, "settings"), **_errors(401, 403, 422)},
                },
                "patch": {
                    "operationId": "patchSettings",
                    "security": _BEARER,
                    "parameters": [_WS_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["sms_failover_enabled"],
                                    "properties": {"sms_failover_enabled": {"type": "boolean"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(SETTINGS_SCHEMA, "settings after the change"),
                        **_errors(400, 401, 403, 413, 422),
                    },
                },
            },
            "/v1/workspaces/{ws}/sms-failover/status": {
                "get": {
                    "operationId": "failoverStatus",
                    "security": _BEARER,
                    "parameters": [_WS_PARAM],
                    "responses": {"200": _json(status_schema, "status"), **_errors(401, 403, 422, 429)},
                }
            },
            "/v1/provider/twilio/status": {
                "post": {
                    "operationId": "twilioStatusCallback",
                    "parameters": [
                        {"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "required": ["MessageSid", "MessageStatus"],
                                    "properties": {
                                        "MessageSid": {"type": "string"},
                                        "MessageStatus": {"type": "string"},
                                        "ErrorCode": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"204": {"description": "accepted"}, **_errors(400, 403, 413)},
                }
            },
            "/v1/workspaces/{ws}/unknowns": {
                "get": {
                    "operationId": "listUnknowns",
                    "description": "Messages still unknown and what was checked (workspace or operator token).",
                    "security": _BEARER,
                    "parameters": [_WS_PARAM],
                    "responses": {"200": _json({"type": "object"}, "unknowns, newest first"), **_errors(401, 403, 422)},
                }
            },
            "/v1/workspaces/{ws}/unknowns/{id}/mark-failed": {
                "post": {
                    "operationId": "markUnknownFailed",
                    "description": "An operator marks an unknown outcome failed (send again under a new key).",
                    "security": _BEARER,
                    "parameters": [
                        _WS_PARAM,
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json(MESSAGE_SCHEMA, "the message, failed"), **_errors(401, 403, 404, 422)},
                }
            },
            "/v1/breaker": {
                "post": {
                    "operationId": "steerBreaker",
                    "description": "Reset or Isolate the fleet's shared breaker: operator tokens only.",
                    "security": _BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["action"],
                                    "properties": {"action": {"type": "string", "enum": ["reset", "isolate"]}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "the breaker after the action"),
                        "409": _error("no shared breaker is configured"),
                        **_errors(400, 401, 403, 413, 422, 503),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "security": _BEARER,
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 403),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                                "message": {"type": "string"},
                                "field": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }
