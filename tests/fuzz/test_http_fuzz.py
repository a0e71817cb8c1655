"""Schemathesis against the real origin and edge: no 5xx and no response outside the published schema.

The schema is the origin's /openapi.json; the edge gets the operations both serve (CONTRACT §3).
Examples are bounded so the whole module runs in a minute or two on two cores.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.contract.kit import VALID_TO, Tokens
from tests.support.fixtures import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKSPACE = "fuzz_ws"
# The edge gets a workspace of its own: fuzzing is derandomized, so the origin's run sends the same keys, and with
# failover enabled the edge would (rightly) replay them rather than send.
EDGE_WORKSPACE = "fuzz_edge_ws"
SHARED_PATHS = r"^/v1/(messages(/\{[^}]+\})?|health)$"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def openapi(stack: Stack) -> dict[str, Any]:
    resp = httpx2.get(stack.origin_url + "/openapi.json", timeout=10)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def auth_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {Tokens(stack.jwt_secret, stack.secrets.service_key).workspace(WORKSPACE)}"}


@pytest.fixture(scope="module")
def edge_auth_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {Tokens(stack.jwt_secret, stack.secrets.service_key).workspace(EDGE_WORKSPACE)}"}


def _fuzz(
    schema: Any, base_url: str, headers: dict[str, str], mode: schemathesis.GenerationMode, workspace: str = WORKSPACE
) -> Counter[str]:
    """Each operation on its own (a one_of over all of them starves some), EXAMPLES_PER_OPERATION cases each."""
    seen: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema selection is empty"
    for operation in operations:
        _fuzz_operation(operation, base_url, headers, mode, seen, workspace)
    return seen


def _fuzz_operation(
    operation: Any,
    base_url: str,
    headers: dict[str, str],
    mode: schemathesis.GenerationMode,
    seen: Counter[str],
    workspace: str,
) -> None:
    positive = mode is schemathesis.GenerationMode.POSITIVE
    # Positive cases name the token's own workspace, so they reach the handlers behind the auth check.
    fixed = {"ws": workspace} if positive and "{ws}" in operation.path else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=strategy, with_auth=st.booleans() if not positive else st.just(True), real_to=st.booleans())
    def run(case: schemathesis.Case[Any], with_auth: bool, real_to: bool) -> None:
        if with_auth:
            case.headers.update(headers)
        if positive and operation.path == "/v1/messages" and isinstance(case.body, dict):
            case.body["workspace_id"] = workspace  # the token's workspace: past the 403, into validation
            if real_to:
                case.body["to"] = VALID_TO  # random digits are rarely a valid number: let some sends through
        response = case.call(base_url=base_url, timeout=15)
        seen[f"{operation.method.upper()} {operation.path} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # An operation with no parameters and no body (GET /v1/health) has nothing to make invalid.
        if positive:
            raise
        seen[f"{operation.method.upper()} {operation.path} nothing-to-negate"] += 1


def test_the_published_schema_covers_the_contract_routes(openapi: dict[str, Any]) -> None:
    paths = set(openapi["paths"])
    assert {"/v1/messages", "/v1/health"} <= paths, paths
    assert any(p.startswith("/v1/messages/{") for p in paths), paths
    assert any(p.startswith("/v1/workspaces/{") and p.endswith("/settings") for p in paths), paths


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_origin_survives_fuzzing(
    stack: Stack, openapi: dict[str, Any], auth_headers: dict[str, str], mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(openapi).exclude(path_regex=r"^/(metrics|settings/)")
    seen = _fuzz(schema, stack.origin_url, auth_headers, mode)
    print(f"origin {mode.value}: {dict(sorted(seen.items()))}")
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert seen["POST /v1/messages 201"] > 0, seen


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_edge_survives_fuzzing_of_the_shared_operations(
    stack: Stack, openapi: dict[str, Any], edge_auth_headers: dict[str, str], mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(openapi).include(path_regex=SHARED_PATHS)
    _enable_at_edge(stack)
    seen = _fuzz(schema, stack.edge_url, edge_auth_headers, mode, EDGE_WORKSPACE)
    print(f"edge {mode.value}: {dict(sorted(seen.items()))}")
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert seen["POST /v1/messages 201"] > 0, seen


def _edge_service_schema() -> dict[str, Any]:
    """The edge's service routes that take query and path parameters (they are not in the origin's schema): what
    a service token may send them, so a fuzzer can try everything else."""
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    statuses = {str(s): error for s in (400, 401, 403, 404, 409, 413, 422, 503)}
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    ws = {
        "name": "ws",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    }
    key = {
        "name": "key",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }

    def query(name: str, maximum: int, minimum: int = 0) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": {"type": "integer", "minimum": minimum, "maximum": maximum}}

    def get(*params: dict[str, Any]) -> dict[str, Any]:
        return {"get": {"parameters": list(params), "responses": {"200": ok, **statuses, "default": error}}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "edge service routes", "version": "1"},
        "paths": {
            "/v1/sync/messages": get(query("shard", 0), query("after", 2**62), query("limit", 1000, minimum=1)),
            "/v1/ledger/{ws}/{key}": get(ws, key),
            "/v1/ledger/ping": get(),
            "/v1/workspaces/{ws}/settings": get(ws),
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"]}},
                }
            }
        },
    }


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_edge_service_routes_survive_fuzzing_of_their_query_and_path(
    stack: Stack, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(_edge_service_schema())
    service = {"Authorization": f"Bearer {Tokens(stack.jwt_secret, stack.secrets.service_key).service()}"}
    seen = _fuzz(schema, stack.edge_url, service, mode, EDGE_WORKSPACE)
    print(f"edge service {mode.value}: {dict(sorted(seen.items()))}")
    assert not [k for k in seen if k.endswith(" 500")], seen


def _enable_at_edge(stack: Stack) -> None:
    """The edge sends only for workspaces its mirror holds enabled: mirror the edge's fuzz workspace so, as the
    origin's failover switch would."""
    service = {"Authorization": f"Bearer {Tokens(stack.jwt_secret, stack.secrets.service_key).service()}"}
    body = {"sms_failover_enabled": True, "updated_at": int(time.time() * 1000)}
    resp = httpx2.put(f"{stack.edge_url}/v1/settings-mirror/{EDGE_WORKSPACE}", json=body, headers=service, timeout=10)
    assert resp.status_code == 200, resp.text
