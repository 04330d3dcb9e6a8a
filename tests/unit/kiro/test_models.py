"""Tests for kiro.models: client model names resolved to Kiro ids (upstream reference §4)."""
from __future__ import annotations

import pytest

from kiroproxy.errors import ModelNotFound
from kiroproxy.kiro.models import Catalog, ModelInfo


def catalog(*ids: str, **kw) -> Catalog:
    """A catalogue serving exactly `ids` (the built-in one when none are given)."""
    return Catalog([ModelInfo(i) for i in ids], **kw) if ids else Catalog(**kw)


@pytest.mark.parametrize("name, expected", [
    ("claude-sonnet-4.5", "claude-sonnet-4.5"),
    ("CLAUDE-SONNET-4.5", "claude-sonnet-4.5"),
    ("Claude-Opus-4.6", "claude-opus-4.6"),
    ("auto", "auto"),
    ("AUTO", "auto"),
    ("deepseek-3.2", "deepseek-3.2"),
    ("qwen3-coder-next", "qwen3-coder-next"),
    ("  claude-haiku-4.5  ", "claude-haiku-4.5"),
])
def test_kiro_ids_pass_through_case_insensitively(name, expected):
    assert catalog().resolve(name) == expected


@pytest.mark.parametrize("name, expected", [
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-sonnet-4-5", "claude-sonnet-4.5"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
    ("claude-sonnet-4-5-latest", "claude-sonnet-4.5"),
    ("claude-haiku-4-5", "claude-haiku-4.5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4.5"),
    ("claude-opus-4-5", "claude-opus-4.5"),
    ("claude-opus-4-6", "claude-opus-4.6"),
    ("claude-sonnet-4-6", "claude-sonnet-4.6"),
    ("models/claude-sonnet-4-5", "claude-sonnet-4.5"),
])
def test_public_claude_names(name, expected):
    assert catalog().resolve(name) == expected


@pytest.mark.parametrize("name, expected", [
    ("claude-3-5-sonnet-latest", "claude-sonnet-4"),
    ("claude-3-5-sonnet-20241022", "claude-sonnet-4"),
    ("claude-3-5-haiku-20241022", "claude-haiku-4.5"),
    ("claude-3-opus-20240229", "claude-opus-4.5"),
])
def test_legacy_claude_3_names(name, expected):
    assert catalog().resolve(name) == expected


def test_unknown_minor_version_falls_back_to_the_family():
    assert catalog().resolve("claude-opus-4-1") == "claude-opus-4.8"
    assert catalog().resolve("claude-opus-4-1-20250805") == "claude-opus-4.8"


def test_version_newer_than_anything_served_gives_the_newest_of_the_family():
    assert catalog().resolve("claude-opus-5-5") == "claude-opus-4.8"
    assert catalog().resolve("claude-haiku-9") == "claude-haiku-4.5"


def test_newest_compares_versions_numerically():
    served = catalog("claude-opus-4.9", "claude-opus-4.10", "claude-opus-4", "claude-sonnet-4.5")
    assert served.resolve("opus") == "claude-opus-4.10"


@pytest.mark.parametrize("name, expected", [
    ("claude-sonnet-4-5[1m]", "claude-sonnet-4.5"),
    ("claude-opus-4.6[1m]", "claude-opus-4.6"),
    ("claude-sonnet-4[1M]", "claude-sonnet-4"),
    ("sonnet[1m]", "claude-sonnet-4.6"),
])
def test_context_marker_suffix_is_dropped(name, expected):
    assert catalog().resolve(name) == expected


@pytest.mark.parametrize("name, expected", [
    ("sonnet", "claude-sonnet-4.6"),
    ("opus", "claude-opus-4.8"),
    ("haiku", "claude-haiku-4.5"),
    ("Opus", "claude-opus-4.8"),
])
def test_family_names_give_the_current_member(name, expected):
    assert catalog().resolve(name) == expected


def test_user_alias_wins_over_a_kiro_id():
    served = catalog(aliases={"claude-sonnet-4.5": "claude-haiku-4.5"})
    assert served.resolve("claude-sonnet-4.5") == "claude-haiku-4.5"


def test_user_alias_wins_over_public_names_and_families():
    served = catalog(aliases={"claude-sonnet-4-5": "claude-opus-4.5", "opus": "claude-sonnet-4"})
    assert served.resolve("claude-sonnet-4-5") == "claude-opus-4.5"
    assert served.resolve("opus") == "claude-sonnet-4"


def test_user_alias_wins_over_rules():
    served = catalog(aliases={"gpt-4o": "claude-opus-4.6"}, rules=[lambda name: "claude-haiku-4.5"])
    assert served.resolve("gpt-4o") == "claude-opus-4.6"


def test_alias_names_are_case_insensitive_and_targets_normalised():
    served = catalog(aliases={"My-Model": "CLAUDE-HAIKU-4.5"})
    assert served.resolve("my-model") == "claude-haiku-4.5"
    assert served.resolve("MY-MODEL[1m]") == "claude-haiku-4.5"


@pytest.mark.parametrize("role, expected", [
    ("default", "claude-sonnet-4.5"), ("fast", "claude-haiku-4.5"), ("strong", "claude-opus-4.5"),
])
def test_alias_to_a_role_name_uses_the_role_model(role, expected):
    assert catalog(aliases={"gpt-4o": role}).resolve("gpt-4o") == expected


def test_roles_come_from_settings():
    served = catalog(aliases={"gpt-4o": "strong"},
                     roles={"default": "claude-sonnet-4", "fast": "claude-haiku-4.5", "strong": "claude-opus-4.6"})
    assert served.resolve("gpt-4o") == "claude-opus-4.6"


def test_alias_to_an_id_the_catalogue_does_not_list_passes_it_through():
    assert catalog(aliases={"next": "claude-opus-9.9"}).resolve("next") == "claude-opus-9.9"


def test_replace_with_the_upstream_catalogue_changes_resolution():
    served = catalog(clock=lambda: 1234.0)
    served.replace([ModelInfo("auto"), ModelInfo("claude-sonnet-4.5"), ModelInfo("claude-opus-4.8"),
                    ModelInfo("claude-haiku-4.5")])
    assert served.resolve("opus") == "claude-opus-4.8"
    assert served.resolve("claude-opus-4-8") == "claude-opus-4.8"
    assert served.resolve("claude-opus-4-6") == "claude-opus-4.8"  # no longer served: family fallback
    assert served.resolve("claude-sonnet-4-20250514") == "claude-sonnet-4.5"
    assert served.source == "upstream" and served.updated_at == 1234.0
    assert served.resolve("deepseek-3.2") == "deepseek-3.2"  # a Kiro id: Kiro decides, never remapped
    with pytest.raises(ModelNotFound):
        served.resolve("llama-3")


def test_replace_with_nothing_keeps_the_current_catalogue():
    served = catalog()
    served.replace([])
    assert served.resolve("claude-opus-4.6") == "claude-opus-4.6"
    assert served.source == "builtin" and served.updated_at is None


def test_family_missing_from_the_catalogue_is_not_found():
    served = catalog("claude-sonnet-4.5")
    with pytest.raises(ModelNotFound):
        served.resolve("opus")
    with pytest.raises(ModelNotFound):
        served.resolve("claude-opus-4-5")


@pytest.mark.parametrize("name", ["gpt-4o", "gemini-2.5-pro", "llama-3", "", "   "])
def test_unknown_names_raise_model_not_found_listing_served_models(name):
    served = catalog("claude-sonnet-4.5", "glm-5", aliases={"my-alias": "glm-5"})
    with pytest.raises(ModelNotFound) as caught:
        served.resolve(name)
    error = caught.value
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    for served_id in ("claude-sonnet-4.5", "glm-5", "my-alias"):
        assert served_id in error.message


def test_lookup_returns_none_instead_of_raising():
    assert catalog().lookup("gpt-4o") is None


def test_rules_hook_maps_protocol_names_to_roles_or_ids():
    def openai(name: str):
        return {"gpt-4o": "default", "gpt-4o-mini": "fast", "o1": "claude-opus-4.6"}.get(name)

    served = catalog(rules=[openai])
    assert served.resolve("gpt-4o") == "claude-sonnet-4.5"
    assert served.resolve("GPT-4o-mini") == "claude-haiku-4.5"
    assert served.resolve("o1") == "claude-opus-4.6"


def test_rules_added_later_are_consulted_in_order():
    served = catalog()
    served.add_rule(lambda name: None)
    served.add_rule(lambda name: "fast" if name.startswith("gemini") else None)
    served.add_rule(lambda name: "strong")
    assert served.resolve("gemini-2.5-flash") == "claude-haiku-4.5"
    assert served.resolve("anything") == "claude-opus-4.5"


def test_rules_do_not_override_kiro_ids_or_claude_names():
    served = catalog(rules=[lambda name: "claude-haiku-4.5"])
    assert served.resolve("claude-opus-4.6") == "claude-opus-4.6"
    assert served.resolve("claude-sonnet-4-5") == "claude-sonnet-4.5"


def test_served_ids_list_models_then_new_aliases():
    served = catalog("claude-sonnet-4.5", "glm-5", aliases={"glm-5": "auto", "mine": "glm-5"})
    assert served.served_ids() == ["claude-sonnet-4.5", "glm-5", "mine"]


def test_info_for_unknown_id_has_defaults():
    info = catalog().info("claude-unknown")
    assert info.id == "claude-unknown" and info.display_name == "claude-unknown"
    assert catalog().info("glm-5").context_window == 128_000


# kiro-upstream.md §4, written out here (not read from the module under test).
DOC_MODEL_IDS = ["auto", "claude-sonnet-4", "claude-sonnet-4.5", "claude-haiku-4.5", "claude-opus-4.5",
                 "claude-sonnet-4.6", "claude-opus-4.6", "claude-opus-4.7", "claude-opus-4.8", "deepseek-3.2",
                 "glm-5", "minimax-m2.1", "minimax-m2.5", "qwen3-coder-next"]


def test_the_built_in_list_is_exactly_the_upstream_reference_list():
    assert sorted(m.id for m in Catalog().models()) == sorted(DOC_MODEL_IDS)


@pytest.mark.parametrize("model_id", DOC_MODEL_IDS)
def test_every_named_kiro_id_resolves_to_itself_served_or_not(model_id):
    assert catalog().resolve(model_id) == model_id
    # An account whose catalogue lacks it: Kiro decides (INVALID_MODEL_ID), the proxy never swaps it.
    assert catalog("claude-sonnet-4.6", "claude-opus-4.6", "claude-haiku-4.5").resolve(model_id) == model_id


@pytest.mark.parametrize("model_id", ["claude-opus-4.9", "claude-sonnet-5.1", "CLAUDE-OPUS-4.7"])
def test_dotted_claude_ids_are_kiro_ids_and_pass_through(model_id):
    assert catalog().resolve(model_id) == model_id.lower()


@pytest.mark.parametrize("name", ["CLAUDE_SONNET_4_20250514_V1_0", "claude_sonnet_4_20250514_v1_0",
                                  "CLAUDE_3_7_SONNET_20250219_V1_0"])
def test_old_back_end_ids_pass_through_unchanged(name):
    assert catalog().resolve(name) == name.upper()
