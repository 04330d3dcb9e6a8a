"""Tests for accounts.quota: the getUsageLimits document (upstream reference §1) reduced to credits."""
from __future__ import annotations

import calendar
import copy
import json
from typing import Any, Dict

import pytest

from kiroproxy.accounts import quota
from kiroproxy.accounts.quota import Quota

RESET = 1767225600.0  # 2026-01-01T00:00:00Z

# The reference's example document, verbatim.
REFERENCE = {
    "daysUntilReset": 12, "nextDateReset": 1767225600.0,
    "subscriptionInfo": {"subscriptionTitle": "KIRO FREE", "type": "Q_DEVELOPER_STANDALONE_FREE"},
    "overageConfiguration": {"overageStatus": "DISABLED"},
    "userInfo": {"email": "u@example.com", "userId": "…"},
    "usageBreakdownList": [{
        "resourceType": "CREDIT", "displayName": "Credit",
        "currentUsageWithPrecision": 12.5, "usageLimitWithPrecision": 50.0, "nextDateReset": 1767225600.0,
        "freeTrialInfo": {"freeTrialStatus": "ACTIVE", "freeTrialExpiry": 1767225600.0,
                          "usageLimitWithPrecision": 500.0, "currentUsageWithPrecision": 100.0},
        "bonuses": [{"usageLimit": 100, "currentUsage": 3}],
    }],
}


def document(**changes: Any) -> Dict[str, Any]:
    """A deep copy of the reference document with top-level keys replaced (None removes one)."""
    doc = copy.deepcopy(REFERENCE)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def breakdown(used: float, limit: float, **extra: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {"resourceType": "CREDIT", "currentUsageWithPrecision": used,
                            "usageLimitWithPrecision": limit}
    data.update(extra)
    return data


def trial(status: str, used: float, limit: float, expiry: float = RESET) -> Dict[str, Any]:
    return {"freeTrialStatus": status, "freeTrialExpiry": expiry,
            "currentUsageWithPrecision": used, "usageLimitWithPrecision": limit}


def test_reference_document_golden():
    expected = Quota(used=115.5, limit=650.0, remaining=534.5,   # 37.5 + 400 + 97
                     trial_used=100.0, trial_limit=500.0, trial_status="ACTIVE", trial_expires_at=RESET,
                     bonus_used=3.0, bonus_limit=100.0, next_reset_at=RESET, days_until_reset=12,
                     subscription="KIRO FREE", subscription_type="Q_DEVELOPER_STANDALONE_FREE",
                     email="u@example.com", overage="DISABLED")
    assert quota.parse(REFERENCE) == expected
    assert not quota.exhausted(quota.parse(REFERENCE))


def test_to_dict_has_stable_snake_case_keys_and_is_json():
    data = quota.parse(REFERENCE).to_dict()
    assert set(data) == {"used", "limit", "remaining", "trial_used", "trial_limit", "trial_status",
                         "trial_expires_at", "bonus_used", "bonus_limit", "next_reset_at", "days_until_reset",
                         "subscription", "subscription_type", "email", "overage"}
    assert json.loads(json.dumps(data))["remaining"] == 534.5
    assert data["subscription_type"] == "Q_DEVELOPER_STANDALONE_FREE"


@pytest.mark.parametrize("doc", [{}, None, [], "oops", {"usageBreakdownList": None},
                                 {"usageBreakdownList": ["x", 3, None]}, {"usageBreakdownList": {"a": 1}}])
def test_empty_or_malformed_documents_read_as_empty(doc):
    assert quota.parse(doc) == Quota()


def test_empty_document_is_not_exhausted():
    assert quota.exhausted(quota.parse({})) is False


def test_missing_top_level_pieces_read_as_none():
    doc = document(daysUntilReset=None, nextDateReset=None, subscriptionInfo=None, userInfo=None,
                   overageConfiguration=None)
    parsed = quota.parse(doc)
    assert (parsed.days_until_reset, parsed.subscription, parsed.subscription_type,
            parsed.email, parsed.overage) == (None, None, None, None, None)
    assert parsed.remaining == 534.5
    # The breakdown still carries nextDateReset.
    assert parsed.next_reset_at == RESET


def test_no_reset_date_anywhere_is_none():
    doc = document(nextDateReset=None, usageBreakdownList=[breakdown(1, 10)])
    assert quota.parse(doc).next_reset_at is None


def test_reset_date_as_iso_text_and_milliseconds():
    assert quota.parse({"nextDateReset": "2026-01-01T00:00:00Z"}).next_reset_at == RESET
    assert quota.parse({"nextDateReset": RESET * 1000}).next_reset_at == RESET
    assert quota.parse({"nextDateReset": "soon"}).next_reset_at is None


def test_integer_only_fields():
    doc = {"usageBreakdownList": [{"currentUsage": 20, "usageLimit": 50,
                                   "bonuses": [{"currentUsage": 5, "usageLimit": 10}]}]}
    parsed = quota.parse(doc)
    assert (parsed.used, parsed.limit, parsed.remaining) == (25.0, 60.0, 35.0)
    assert (parsed.bonus_used, parsed.bonus_limit) == (5.0, 10.0)


def test_precise_fields_win_over_integer_ones():
    item = breakdown(12.75, 50.0, currentUsage=13, usageLimit=50)
    parsed = quota.parse({"usageBreakdownList": [item]})
    assert parsed.used == 12.75
    assert parsed.remaining == 37.25


def test_unusable_precise_field_falls_back_to_the_integer_one():
    item = {"currentUsageWithPrecision": None, "currentUsage": 4,
            "usageLimitWithPrecision": "n/a", "usageLimit": 10}
    parsed = quota.parse({"usageBreakdownList": [item]})
    assert (parsed.used, parsed.limit, parsed.remaining) == (4.0, 10.0, 6.0)


def test_booleans_and_non_finite_numbers_are_not_credits():
    item = {"currentUsageWithPrecision": True, "usageLimitWithPrecision": float("inf"), "usageLimit": 8}
    parsed = quota.parse({"usageBreakdownList": [item], "daysUntilReset": "NaN"})
    assert (parsed.used, parsed.limit) == (0.0, 8.0)
    assert parsed.days_until_reset is None


def test_expired_trial_is_reported_but_not_counted():
    doc = {"usageBreakdownList": [breakdown(10, 50, freeTrialInfo=trial("EXPIRED", 100, 500))]}
    parsed = quota.parse(doc)
    assert (parsed.used, parsed.limit, parsed.remaining) == (10.0, 50.0, 40.0)
    assert (parsed.trial_status, parsed.trial_used, parsed.trial_limit) == ("EXPIRED", 100.0, 500.0)


def test_trial_status_is_compared_case_insensitively():
    doc = {"usageBreakdownList": [breakdown(10, 50, freeTrialInfo=trial("active", 0, 100))]}
    assert quota.parse(doc).remaining == 140.0


def test_no_trial_leaves_trial_fields_empty():
    parsed = quota.parse({"usageBreakdownList": [breakdown(1, 2)]})
    assert (parsed.trial_status, parsed.trial_expires_at, parsed.trial_limit) == (None, None, 0.0)


def test_active_trial_is_preferred_over_an_expired_one():
    doc = {"usageBreakdownList": [breakdown(0, 0, freeTrialInfo=trial("EXPIRED", 1, 2, expiry=5.0)),
                                  breakdown(0, 0, freeTrialInfo=trial("ACTIVE", 10, 30))]}
    parsed = quota.parse(doc)
    assert (parsed.trial_status, parsed.trial_used, parsed.trial_limit, parsed.trial_expires_at) == (
        "ACTIVE", 10.0, 30.0, RESET)
    assert parsed.remaining == 20.0


def test_bonuses_marked_expired_are_not_counted():
    bonuses = [{"usageLimit": 100, "currentUsage": 3, "status": "EXPIRED"},
               {"usageLimitWithPrecision": 20.5, "currentUsageWithPrecision": 0.5, "status": "ACTIVE"}]
    parsed = quota.parse({"usageBreakdownList": [breakdown(0, 0, bonuses=bonuses)]})
    assert (parsed.bonus_used, parsed.bonus_limit, parsed.remaining) == (0.5, 20.5, 20.0)


def test_negative_remainders_are_clamped_per_item():
    # Over the base limit by 10; the trial and the bonus still hold credits of their own.
    doc = {"usageBreakdownList": [breakdown(60, 50, freeTrialInfo=trial("ACTIVE", 20, 30),
                                            bonuses=[{"usageLimit": 5, "currentUsage": 9},
                                                     {"usageLimit": 5, "currentUsage": 1}])]}
    parsed = quota.parse(doc)
    assert parsed.remaining == 14.0          # 0 + 10 + 0 + 4, not (90 - 85) = 5
    assert (parsed.used, parsed.limit) == (90.0, 90.0)


def test_several_breakdowns_are_summed():
    doc = {"usageBreakdownList": [breakdown(1.25, 10), breakdown(2.5, 5)]}
    parsed = quota.parse(doc)
    assert (parsed.used, parsed.limit, parsed.remaining) == (3.75, 15.0, 11.25)


def test_float_noise_is_rounded_away():
    doc = {"usageBreakdownList": [breakdown(0.1, 1), breakdown(0.2, 1)]}
    assert quota.parse(doc).used == 0.3


@pytest.mark.parametrize("used, limit, expected", [(50, 50, True), (60, 50, True), (49.99, 50, False)])
def test_exhausted(used, limit, expected):
    parsed = quota.parse({"usageBreakdownList": [breakdown(used, limit)]})
    assert quota.exhausted(parsed) is expected


def test_exhausted_base_with_an_active_trial_left_is_not_exhausted():
    doc = {"usageBreakdownList": [breakdown(50, 50, freeTrialInfo=trial("ACTIVE", 0, 1))]}
    assert quota.exhausted(quota.parse(doc)) is False


def test_exhausted_base_with_only_an_expired_trial_is_exhausted():
    doc = {"usageBreakdownList": [breakdown(50, 50, freeTrialInfo=trial("EXPIRED", 0, 500))]}
    assert quota.exhausted(quota.parse(doc)) is True


def test_exhausted_on_a_hand_built_quota():
    assert quota.exhausted(Quota(limit=10.0, remaining=0.0)) is True
    assert quota.exhausted(Quota(limit=10.0, remaining=-1.0)) is True
    assert quota.exhausted(Quota(limit=10.0, remaining=0.5)) is False


@pytest.mark.parametrize("now, period, reset", [
    (calendar.timegm((2025, 3, 14, 12, 0, 0)), "month", calendar.timegm((2025, 4, 1, 0, 0, 0))),
    (calendar.timegm((2025, 12, 31, 23, 59, 59)), "month", calendar.timegm((2026, 1, 1, 0, 0, 0))),
    (calendar.timegm((2025, 3, 1, 0, 0, 0)), "month", calendar.timegm((2025, 4, 1, 0, 0, 0))),
    (calendar.timegm((2025, 3, 14, 12, 0, 0)), "day", calendar.timegm((2025, 3, 15, 0, 0, 0))),
])
def test_next_reset(now, period, reset):
    assert quota.next_reset(now, period) == reset
