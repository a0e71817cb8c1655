"""The pure halves of the JS <-> ApiRequest/ApiResponse bridge (the JS halves run in test_host.py)."""

from __future__ import annotations

import json

from smsfailover.core.messages_api import ApiResponse
from smsfailover.edge_worker.bridge import query_params, response_headers, response_text


def test_the_first_value_of_a_repeated_query_name_wins() -> None:
    assert query_params("idempotency_key=a&idempotency_key=b&limit=") == {"idempotency_key": "a", "limit": ""}
    assert query_params("key=a%2Fb%20c") == {"key": "a/b c"}


def test_responses_are_json_never_cached_and_keep_their_headers() -> None:
    response = ApiResponse(409, {"error": {"code": "idempotency_in_progress", "message": "é"}}, {"Retry-After": "2"})
    headers = response_headers(response)
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert headers["retry-after"] == "2"
    assert json.loads(response_text(response)) == response.body
