from __future__ import annotations

from kiroproxy.identity import HIDDEN, identities, neutral


def test_known_names_become_labels_and_other_identities_are_hidden():
    known = identities([{"id": "abc123", "name": "jane.doe@example.com", "quota": {"email": "jd@corp.example"}},
                        {"id": "def456", "name": "G", "quota": None}])
    text = ("jane.doe@example.com: Your User ID (d-90671a2b3c.4f5e6789) temporarily is suspended; "
            "profile arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK; jd@corp.example; "
            "other@mail.example; userId: 12ab34cd56")
    shown = neutral(text, known)
    assert shown.startswith("account abc123: Your User ID (" + HIDDEN)
    for secret in ("jane.doe", "d-90671a2b3c", "699475941385", "jd@corp", "other@mail", "12ab34cd56"):
        assert secret not in shown
    assert "temporarily is suspended" in shown and shown.count("account abc123") == 2


def test_ordinary_text_is_unchanged():
    text = "Your User ID temporarily is suspended. Every Kiro account is rate limited; G is a letter"
    assert neutral(text, identities([{"id": "x", "name": "G"}])) == text


def test_long_runs_of_address_characters_keep_their_meaning():
    # A match starts only where a run of address characters starts: a whole run ending in an
    # address is hidden as one, and a long run without "@" is left as it is.
    run = "x" * 5000
    assert neutral(f"model {run} is unknown") == f"model {run} is unknown"
    assert neutral(f"from {run}.joe@example.com today") == f"from {HIDDEN} today"
