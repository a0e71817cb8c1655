"""The error envelope both endpoints answer with, and the SDK's exception tree."""

from __future__ import annotations

from smsfailover.core.errors import ApiError, ConfigurationError, MessageRejected, SendFailed, SmsFailoverError


def test_the_envelope_has_code_and_message_and_no_field_unless_given() -> None:
    error = ApiError(400, "invalid_json", "The request body is not valid JSON.")
    assert error.envelope() == {"error": {"code": "invalid_json", "message": "The request body is not valid JSON."}}
    assert error.status == 400
    assert error.headers == {}
    assert str(error) == "The request body is not valid JSON."


def test_the_envelope_carries_field_extra_and_headers() -> None:
    headers = {"Retry-After": "3"}
    error = ApiError(422, "provider_rejected", "Refused.", field="to", headers=headers, extra={"provider_code": 21211})
    headers["Retry-After"] = "99"  # the error keeps its own copy
    assert error.envelope() == {
        "error": {"code": "provider_rejected", "message": "Refused.", "field": "to", "provider_code": 21211}
    }
    assert error.headers == {"Retry-After": "3"}


def test_repr_names_status_code_and_field() -> None:
    assert repr(ApiError(403, "forbidden", "No.", field="workspace_id")) == (
        "ApiError(403, 'forbidden', 'No.', field='workspace_id')"
    )


def test_sdk_errors_share_one_base_and_keep_their_details() -> None:
    rejected = MessageRejected("bad number", code="invalid_phone_number", status=422, field="to", attempts=["a"])
    assert isinstance(rejected, SmsFailoverError)
    assert (rejected.code, rejected.status, rejected.field, rejected.attempts) == (
        "invalid_phone_number",
        422,
        "to",
        ("a",),
    )
    failed = SendFailed("every path failed", attempts=[1, 2])
    assert isinstance(failed, SmsFailoverError)
    assert failed.attempts == (1, 2)
    assert SendFailed("x").attempts == ()
    assert MessageRejected("x", code="c", status=400).field is None
    assert issubclass(ConfigurationError, SmsFailoverError)
