"""/openapi.json describes every origin route, and schemathesis finds no 5xx and no answer outside it.

The origin (with the real simulator and the fake edge) runs in a thread of its own, since schemathesis calls it
synchronously.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.origin.harness import Origin, running_origin

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
WORKSPACE = "fuzz_ws"


@pytest.fixture(scope="module")
def threaded_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    ready: list[Origin] = []
    failed: list[BaseException] = []
    stop = threading.Event()

    async def run() -> None:
        try:
            async with running_origin("sqlite", tmp_path_factory.mktemp("fuzz")) as origin:
                ready.append(origin)
                await asyncio.to_thread(stop.wait)
        except BaseException as exc:
            failed.append(exc)
            raise

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not ready and not failed and time.monotonic() < deadline:
        time.sleep(0.05)
    if failed or not ready:
        raise RuntimeError(f"the origin did not start: {failed}")
    yield ready[0]
    stop.set()
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def openapi(threaded_origin: Origin) -> dict[str, Any]:
    doc: dict[str, Any] = httpx2.get(threaded_origin.url + "/openapi.json", timeout=10).json()
    return doc


def test_every_route_is_described(openapi: dict[str, Any]) -> None:
    assert set(openapi["paths"]) == {
        "/v1/messages",
        "/v1/messages/{id}",
        "/v1/health",
        "/v1/workspaces/{ws}/messages",
        "/v1/workspaces/{ws}/settings",
        "/v1/workspaces/{ws}/sms-failover/status",
        "/v1/provider/twilio/status",
        "/v1/breaker",
        "/v1/workspaces/{ws}/unknowns",
        "/v1/workspaces/{ws}/unknowns/{id}/mark-failed",
        "/metrics",
    }


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_fuzzing_finds_no_server_error_and_no_schema_violation(
    threaded_origin: Origin, openapi: dict[str, Any], mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(openapi)
    headers = {"Authorization": f"Bearer {threaded_origin.token(WORKSPACE)}"}
    calls = 0

    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=schema.as_strategy(generation_mode=mode), with_auth=st.booleans(), own_workspace=st.booleans())
    def run(case: Any, with_auth: bool, own_workspace: bool) -> None:
        nonlocal calls
        if with_auth:
            case.headers.update(headers)
        if own_workspace and case.path_parameters and "ws" in case.path_parameters:
            case.path_parameters["ws"] = WORKSPACE
        response = case.call(base_url=threaded_origin.url, timeout=15)
        calls += 1
        case.validate_response(response, checks=CHECKS)

    run()
    assert calls > 0
