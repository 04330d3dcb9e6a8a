"""Tests for kiro.errors: every row of the upstream error table, Retry-After, odd bodies, exceptions."""
from __future__ import annotations

import calendar
import json
import time
from email.utils import formatdate
from typing import Optional

import pytest

from kiroproxy.kiro import errors
from kiroproxy.kiro.errors import EXHAUSTED, FAIL, PROFILE, REFRESH, ROTATE, SUSPEND


def body(message: Optional[str], reason: Optional[str] = None, type_: Optional[str] = None) -> str:
    """A Kiro error body as the service writes it: {"message", "reason"} plus maybe __type."""
    data = {"message": message, "reason": reason}
    if type_:
        data["__type"] = f"com.amazon.aws.codewhisperer#{type_}"
    return json.dumps(data)


# (status, body, action, client status, client kind)
TABLE = [
    pytest.param(400, body("Input is too long.", "CONTENT_LENGTH_EXCEEDS_THRESHOLD"), FAIL, 400, "context_length",
                 id="400-content-length"),
    pytest.param(400, body("Input is too long."), FAIL, 400, "context_length", id="400-input-too-long"),
    pytest.param(400, body("Improperly formed request."), FAIL, 400, "invalid_request", id="400-improperly-formed"),
    pytest.param(400, body("Invalid model. Please select a different model to continue.", "INVALID_MODEL_ID"),
                 FAIL, 400, "invalid_request", id="400-invalid-model-id"),
    pytest.param(400, body("Invalid model"), FAIL, 400, "invalid_request", id="400-invalid-model-text"),
    pytest.param(400, body("profileArn is required for this request."), PROFILE, 502, "upstream",
                 id="400-profile-required"),
    pytest.param(400, body("Invalid profileArn"), PROFILE, 502, "upstream", id="400-invalid-profile"),
    pytest.param(400, body("Request body is invalid", "REQUEST_BODY_INVALID"), PROFILE, 502, "upstream",
                 id="400-request-body-invalid"),
    pytest.param(401, body("Unauthorized"), REFRESH, 503, "overloaded", id="401"),
    pytest.param(401, "", REFRESH, 503, "overloaded", id="401-empty-body"),
    pytest.param(402, body("You have reached the limit", "MONTHLY_REQUEST_COUNT"), EXHAUSTED, 429, "quota",
                 id="402-monthly"),
    pytest.param(402, body("Overage limit reached", "OVERAGE_REQUEST_LIMIT_EXCEEDED"), EXHAUSTED, 429, "quota",
                 id="402-overage"),
    pytest.param(403, body("The bearer token included in the request is invalid."), REFRESH, 503,
                 "overloaded", id="403-bearer-invalid"),
    pytest.param(403, body("The security token included in the request is expired"), REFRESH, 503,
                 "overloaded", id="403-token-expired"),
    pytest.param(403, body("Your account is suspended", "TEMPORARILY_SUSPENDED"), SUSPEND, 403, "permission",
                 id="403-temporarily-suspended"),
    pytest.param(403, body("Your User ID temporarily is suspended."), SUSPEND, 403, "permission",
                 id="403-temporarily-is-suspended"),
    pytest.param(403, body("We have locked your account due to unusual activity."), SUSPEND, 403, "permission",
                 id="403-locked"),
    pytest.param(403, body("User is not authorized to make this call."), FAIL, 403, "permission",
                 id="403-not-authorized"),
    pytest.param(403, body("This feature is not supported", "FEATURE_NOT_SUPPORTED"), FAIL, 403, "permission",
                 id="403-feature-not-supported"),
    pytest.param(429, body("Rate exceeded", "USER_REQUEST_RATE_EXCEEDED"), ROTATE, 429, "rate_limit",
                 id="429-user-rate"),
    pytest.param(429, body("Too many requests"), ROTATE, 429, "rate_limit", id="429-other"),
    pytest.param(429, body("I am at capacity", "INSUFFICIENT_MODEL_CAPACITY"), ROTATE, 529, "overloaded",
                 id="429-capacity"),
    pytest.param(400, body("I am at capacity", "INSUFFICIENT_MODEL_CAPACITY"), ROTATE, 529, "overloaded",
                 id="400-capacity"),
    pytest.param(429, body("Monthly limit reached", "MONTHLY_REQUEST_COUNT"), EXHAUSTED, 429, "quota",
                 id="429-monthly"),
    pytest.param(429, body("Daily limit reached", "DAILY_REQUEST_COUNT"), EXHAUSTED, 429, "quota", id="429-daily"),
    pytest.param(429, body("Due to suspicious activity, we have applied temporary limits to your account."),
                 ROTATE, 429, "rate_limit", id="429-suspicious"),
    pytest.param(500, body("Encountered unexpectedly high load when processing the request, please try again."),
                 ROTATE, 529, "overloaded", id="500-high-load"),
    pytest.param(503, body("The model is temporarily unavailable", "MODEL_TEMPORARILY_UNAVAILABLE"),
                 ROTATE, 529, "overloaded", id="503-model-unavailable"),
    pytest.param(500, body("Internal server error"), ROTATE, 503, "overloaded", id="500-other"),
    pytest.param(502, "<html><body>502 Bad Gateway</body></html>", ROTATE, 503, "overloaded", id="502-html"),
]


@pytest.mark.parametrize("status, text, action, client_status, kind", TABLE)
def test_error_table_row(status, text, action, client_status, kind):
    failure = errors.classify(status, text)
    assert isinstance(failure, errors.KiroFailure)
    assert failure.action == action
    assert (failure.status, failure.kind) == (client_status, kind)
    assert failure.upstream_status == status
    assert failure.client_error.status == client_status


@pytest.mark.parametrize("status, reason, period", [
    (402, "MONTHLY_REQUEST_COUNT", "month"),
    (402, "OVERAGE_REQUEST_LIMIT_EXCEEDED", "month"),
    (429, "MONTHLY_REQUEST_COUNT", "month"),
    (429, "DAILY_REQUEST_COUNT", "day"),
])
def test_exhausted_quota_says_until_when(status, reason, period):
    failure = errors.classify(status, body("limit reached", reason))
    assert (failure.action, failure.period, failure.reason) == (EXHAUSTED, period, reason)


def test_402_without_a_marker_still_means_credits_exhausted():
    failure = errors.classify(402, body("Payment required"))
    assert (failure.action, failure.period) == (EXHAUSTED, "month")


def test_user_rate_limit_leaves_the_cooldown_to_the_pool_default_and_rotates():
    # Without Retry-After the pool's default applies; it grows with repeated 429s (issue 5).
    failure = errors.classify(429, body("Rate exceeded", "USER_REQUEST_RATE_EXCEEDED"))
    assert failure.cooldown is None
    assert failure.same_account_retry is False


def test_capacity_backs_off_one_to_three_seconds_and_may_retry_the_same_account():
    failure = errors.classify(429, body("busy", "INSUFFICIENT_MODEL_CAPACITY"))
    assert 1.0 <= failure.cooldown <= 3.0
    assert failure.same_account_retry is True


def test_suspicious_activity_cools_down_for_at_least_ten_minutes():
    failure = errors.classify(429, body("Due to suspicious activity we placed temporary limits"))
    assert failure.cooldown >= 600
    assert failure.same_account_retry is False


@pytest.mark.parametrize("status, text", [
    (500, body("Encountered unexpectedly high load when processing the request")),
    (503, body("down", "MODEL_TEMPORARILY_UNAVAILABLE")),
    (500, body("boom")),
    (504, "gateway timeout"),
])
def test_server_side_failures_are_short_transient_backoffs(status, text):
    failure = errors.classify(status, text)
    assert failure.action == ROTATE and failure.same_account_retry is True
    assert 0 < failure.cooldown <= 5.0
    assert failure.status >= 500


@pytest.mark.parametrize("status, text", [
    (400, body("Improperly formed request.")),
    (400, body("Invalid model", "INVALID_MODEL_ID")),
    (403, body("User is not authorized to make this call.")),
    (404, body("Not found")),
])
def test_client_side_failures_are_never_retried(status, text):
    failure = errors.classify(status, text)
    assert failure.action == FAIL
    assert failure.same_account_retry is False
    assert 400 <= failure.status < 500


def test_invalid_model_carries_the_model_not_found_code():
    assert errors.classify(400, body("Invalid model", "INVALID_MODEL_ID")).code == "model_not_found"


def test_client_message_repeats_the_upstream_message_and_keeps_the_reason():
    failure = errors.classify(400, body("Improperly formed request."))
    assert "Improperly formed request." in failure.message
    assert failure.reason is None
    failure = errors.classify(402, body("Limit hit", "MONTHLY_REQUEST_COUNT"))
    assert "Limit hit" in failure.message and failure.reason == "MONTHLY_REQUEST_COUNT"


def test_failure_is_a_proxy_error_with_the_client_errors_shape():
    failure = errors.classify(403, body("User is not authorized to make this call."))
    assert isinstance(failure, errors.ProxyError)
    assert str(failure) == failure.client_error.message
    assert "fail" in repr(failure)


# ----- Retry-After -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("7", 7.0), (" 12 ", 12.0), ("2.5", 2.5), ("0", 0.0), ("-3", 0.0),
    ("", None), (None, None), ("soon", None), ("Thu, 99 Foo 2015 99:99:99 GMT", None),
])
def test_parse_retry_after_seconds(value, expected):
    assert errors.parse_retry_after(value, now=1_000.0) == expected


def test_parse_retry_after_http_date_counts_from_now():
    when = calendar.timegm((2015, 10, 21, 7, 28, 0))
    assert errors.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=when - 90) == 90.0


def test_parse_retry_after_date_in_the_past_is_zero():
    when = calendar.timegm((2015, 10, 21, 7, 28, 0))
    assert errors.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=when + 500) == 0.0


def test_retry_after_seconds_are_honoured_as_cooldown_and_shown_to_the_client():
    failure = errors.classify(429, body("Rate exceeded", "USER_REQUEST_RATE_EXCEEDED"), retry_after="42")
    assert failure.cooldown == 42.0
    assert failure.retry_after == 42.0


def test_retry_after_as_http_date():
    date = formatdate(time.time() + 300, usegmt=True)
    failure = errors.classify(429, body("Rate exceeded"), retry_after=date)
    assert 295.0 <= failure.cooldown <= 300.0
    assert failure.retry_after == failure.cooldown


def test_retry_after_overrides_the_capacity_backoff():
    failure = errors.classify(429, body("busy", "INSUFFICIENT_MODEL_CAPACITY"), retry_after="6")
    assert failure.cooldown == 6.0 and failure.retry_after == 6.0


def test_suspicious_activity_keeps_the_longer_of_retry_after_and_its_minimum():
    short = errors.classify(429, body("suspicious activity"), retry_after="60")
    long = errors.classify(429, body("suspicious activity"), retry_after="7200")
    assert short.cooldown >= 600
    assert long.cooldown == 7200.0


def test_quota_exhaustion_passes_retry_after_to_the_client():
    failure = errors.classify(429, body("limit", "DAILY_REQUEST_COUNT"), retry_after="3600")
    assert failure.retry_after == 3600.0


# ----- odd bodies --------------------------------------------------------------------------------

def test_non_json_body_is_used_as_the_message():
    failure = errors.classify(502, "  <html>502 Bad Gateway</html>\n")
    assert "<html>502 Bad Gateway</html>" in failure.message
    assert failure.reason is None


def test_non_json_body_markers_still_classify():
    assert errors.classify(400, "Input is too long.").action == FAIL
    assert errors.classify(400, "Input is too long.").kind == "context_length"
    assert errors.classify(403, "TEMPORARILY_SUSPENDED").action == SUSPEND


def test_empty_body_names_the_status():
    failure = errors.classify(500, "")
    assert "500" in failure.message


def test_json_that_is_not_an_object():
    message, reason = errors.parse_body('["oops"]')
    assert "oops" in message and reason is None


def test_long_bodies_are_cut():
    message, _ = errors.parse_body("x" * 5000)
    assert 0 < len(message) <= 500


@pytest.mark.parametrize("text, expected", [
    (json.dumps({"Message": "Capital M"}), ("Capital M", None)),
    (json.dumps({"error": "invalid_grant", "error_description": "Token revoked"}), ("Token revoked", None)),
    (json.dumps({"message": "m", "reason": None}), ("m", None)),
    (json.dumps({"message": "m", "reason": "R", "__type": "x#T"}), ("m", "R")),
])
def test_parse_body_field_variants(text, expected):
    assert errors.parse_body(text) == expected


def test_type_field_becomes_the_reason():
    failure = errors.classify(429, body("Rate exceeded", type_="ThrottlingException"))
    assert failure.reason == "ThrottlingException"
    assert failure.action == ROTATE and failure.kind == "rate_limit"


def test_type_field_with_a_bearer_message_refreshes():
    failure = errors.classify(403, body("The bearer token included in the request is invalid.",
                                        type_="AccessDeniedException"))
    assert (failure.action, failure.reason) == (REFRESH, "AccessDeniedException")


def test_a_rejected_account_token_is_never_shown_to_clients_as_their_own_bad_key():
    """A 401 makes SDKs and agents stop with "your API key is wrong"; it is the proxy's account."""
    failure = errors.classify(403, body("The bearer token included in the request is invalid."))
    assert failure.status != 401 and failure.kind != "authentication"
    assert (failure.status, failure.kind) == (503, "overloaded")
    assert "Kiro account's token was rejected" in failure.message


def test_type_field_validation_with_improper_request_fails():
    failure = errors.classify(400, body("Improperly formed request.", type_="ValidationException"))
    assert (failure.action, failure.status, failure.reason) == (FAIL, 400, "ValidationException")


# ----- exceptions inside a 200 stream ------------------------------------------------------------

def test_throttling_exception_rotates_as_rate_limit():
    failure = errors.classify_exception("ThrottlingException", "Rate exceeded")
    assert (failure.action, failure.status, failure.kind) == (ROTATE, 429, "rate_limit")
    assert failure.upstream_status == 429
    assert failure.same_account_retry is False


def test_throttling_exception_with_suspicious_activity_cools_long():
    failure = errors.classify_exception("ThrottlingException", "Due to suspicious activity, temporary limits")
    assert failure.cooldown >= 600


def test_validation_exception_input_too_long_is_too_large():
    failure = errors.classify_exception("ValidationException", "Input is too long.")
    assert (failure.action, failure.status, failure.kind) == (FAIL, 400, "context_length")


def test_validation_exception_other_is_a_bad_request():
    failure = errors.classify_exception("ValidationException", "Improperly formed request.")
    assert (failure.action, failure.status, failure.kind) == (FAIL, 400, "invalid_request")


def test_internal_server_exception_is_transient():
    failure = errors.classify_exception("InternalServerException", "Something broke")
    assert failure.action == ROTATE and failure.same_account_retry is True
    assert failure.status >= 500
    assert "Something broke" in failure.message


def test_unknown_exception_is_treated_as_a_transient_server_error():
    failure = errors.classify_exception("BrandNewException", "")
    assert failure.action == ROTATE and failure.same_account_retry is True
    assert failure.status >= 500
    assert "BrandNewException" in failure.message


def test_access_denied_exception_with_expired_token_refreshes():
    failure = errors.classify_exception("AccessDeniedException", "The bearer token has expired")
    assert failure.action == REFRESH
