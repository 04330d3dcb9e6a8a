"""Model catalogue and name resolution shared by every client protocol.

Resolution order: user aliases > Kiro ids > public Claude names > protocol tables (OpenAI, Gemini)
> family fallback. A Kiro id is never remapped: one the catalogue lacks passes through unchanged.
Pure apart from the lock around the replaceable catalogue; no I/O here.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import ModelNotFound

CLAUDE_FAMILIES = ("opus", "sonnet", "haiku")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str = ""
    context_window: int = 200_000
    max_output: int = 64_000
    images: bool = True
    thinking_efforts: Optional[Tuple[str, ...]] = None  # native thinking support (catalogue schema)
    rate: Optional[float] = None

    @property
    def display_name(self) -> str:
        return self.name or self.id


BUILTIN: Tuple[ModelInfo, ...] = (
    ModelInfo("auto", "Auto"),
    ModelInfo("claude-sonnet-4", "Claude Sonnet 4"),
    ModelInfo("claude-sonnet-4.5", "Claude Sonnet 4.5"),
    ModelInfo("claude-haiku-4.5", "Claude Haiku 4.5"),
    ModelInfo("claude-opus-4.5", "Claude Opus 4.5"),
    ModelInfo("claude-sonnet-4.6", "Claude Sonnet 4.6"),
    ModelInfo("claude-opus-4.6", "Claude Opus 4.6"),
    ModelInfo("claude-opus-4.7", "Claude Opus 4.7"),
    ModelInfo("claude-opus-4.8", "Claude Opus 4.8"),
    ModelInfo("deepseek-3.2", "DeepSeek 3.2", context_window=128_000, images=False),
    ModelInfo("glm-5", "GLM 5", context_window=128_000, images=False),
    ModelInfo("minimax-m2.1", "MiniMax M2.1", context_window=192_000, images=False),
    ModelInfo("minimax-m2.5", "MiniMax M2.5", context_window=192_000, images=False),
    ModelInfo("qwen3-coder-next", "Qwen3 Coder Next", context_window=256_000, images=False),
)

_BRACKET = re.compile(r"\[[^\]]*\]$")
_DATE = r"(?:-\d{8}|-latest|-v\d+(?::\d+)?)"
_NEW_STYLE = re.compile(rf"^claude-(opus|sonnet|haiku)-(\d+)(?:[-.](\d{{1,2}}))?{_DATE}?$")
_OLD_STYLE = re.compile(rf"^claude-(\d+)(?:[-.](\d))?-(opus|sonnet|haiku){_DATE}?$")
_KIRO_ID = re.compile(r"^claude-(opus|sonnet|haiku)-(\d+)(?:\.(\d+))?$")
# The ids the upstream reference (§4) names, and the shapes only Kiro uses (public Claude names
# use dashes): these are Kiro's own ids and go upstream as they are, served or not.
NAMED_IDS = frozenset(m.id for m in BUILTIN)
_DOTTED_ID = re.compile(r"^claude-(?:opus|sonnet|haiku)-\d+\.\d+$")
_OLD_BACKEND_ID = re.compile(r"^claude_[a-z0-9_]+_v\d+_\d+$")  # CLAUDE_SONNET_4_20250514_V1_0
# Claude 3.x names have no Kiro counterpart; the upstream reference maps them to these.
_LEGACY = {("3", "5", "sonnet"): "claude-sonnet-4", ("3", "5", "haiku"): "claude-haiku-4.5",
           ("3", "", "opus"): "claude-opus-4.5", ("3", "7", "sonnet"): "claude-sonnet-4",
           ("3", "", "sonnet"): "claude-sonnet-4", ("3", "", "haiku"): "claude-haiku-4.5"}

# A protocol table maps a requested name to a target; targets may be role names that the
# settings turn into ids: "default", "fast", "strong".
Rule = Callable[[str], Optional[str]]


def version_key(model_id: str) -> Tuple[int, int]:
    match = _KIRO_ID.match(model_id)
    if not match:
        return (-1, -1)
    return int(match.group(2)), int(match.group(3) or 0)


class Catalog:
    """The served models (built-in until the upstream catalogue replaces them) and resolution."""

    def __init__(self, models: Iterable[ModelInfo] = BUILTIN, *, aliases: Mapping[str, str] = (),
                 roles: Optional[Mapping[str, str]] = None, rules: Sequence[Rule] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._models: Dict[str, ModelInfo] = {m.id: m for m in models}
        self._aliases = {k.lower(): v for k, v in dict(aliases).items()}
        self._roles = dict(roles or {"default": "claude-sonnet-4.5", "fast": "claude-haiku-4.5",
                                     "strong": "claude-opus-4.5"})
        self._rules = list(rules)
        self._clock = clock
        self.source = "builtin"
        self.updated_at: Optional[float] = None

    # ----- catalogue ---------------------------------------------------------------------

    def models(self) -> List[ModelInfo]:
        with self._lock:
            return list(self._models.values())

    def aliases(self) -> Dict[str, str]:
        return dict(self._aliases)

    def info(self, model_id: str) -> ModelInfo:
        with self._lock:
            return self._models.get(model_id) or ModelInfo(model_id)

    def replace(self, models: Iterable[ModelInfo], source: str = "upstream") -> None:
        fresh = {m.id: m for m in models}
        if not fresh:
            return
        with self._lock:
            self._models = fresh
            self.source = source
            self.updated_at = self._clock()

    def add_rule(self, rule: Rule) -> None:
        self._rules.append(rule)

    def served_ids(self) -> List[str]:
        """Kiro ids then aliases, without duplicates."""
        ids = [m.id for m in self.models()]
        return ids + [a for a in self._aliases if a not in ids]

    # ----- resolution --------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """The Kiro model id for a client's model name. Raises ModelNotFound."""
        found = self.lookup(name)
        if found is None:
            served = ", ".join(self.served_ids())
            raise ModelNotFound(f"model '{name}' is not served here; available models: {served}",
                                param="model", code="model_not_found")
        return found

    def lookup(self, name: str) -> Optional[str]:
        raw = (name or "").strip()
        if not raw:
            return None
        key = _BRACKET.sub("", raw).strip().lower()
        key = key.split("/", 1)[1] if key.startswith("models/") else key
        with self._lock:
            ids = {m.lower(): m for m in self._models}
        if key in self._aliases:
            return self._target(self._aliases[key], ids)
        if raw.lower() in ids:
            return ids[raw.lower()]
        if key in ids:
            return ids[key]
        if key in NAMED_IDS or _DOTTED_ID.match(key):
            return key  # the account's catalogue is the truth: Kiro answers if it lacks this one
        if _OLD_BACKEND_ID.match(key):
            return key.upper()
        claude = self._claude(key, ids)
        if claude:
            return claude
        for rule in self._rules:
            target = rule(key)
            if target:
                return self._target(target, ids)
        return None

    def _target(self, target: str, ids: Mapping[str, str]) -> str:
        target = self._roles.get(target, target)
        return ids.get(target.lower(), target)

    def _claude(self, key: str, ids: Mapping[str, str]) -> Optional[str]:
        if key in CLAUDE_FAMILIES:
            return self.newest(key, ids)
        match = _NEW_STYLE.match(key)
        if match:
            family, major, minor = match.group(1), match.group(2), match.group(3)
            wanted = f"claude-{family}-{major}" + (f".{minor}" if minor else "")
            if wanted in ids:
                return ids[wanted]
            return self.newest(family, ids)
        match = _OLD_STYLE.match(key)
        if match:
            major, minor, family = match.group(1), match.group(2) or "", match.group(3)
            legacy = _LEGACY.get((major, minor, family))
            if legacy and legacy in ids:
                return ids[legacy]
            wanted = f"claude-{family}-{major}" + (f".{minor}" if minor else "")
            return ids.get(wanted) or self.newest(family, ids)
        if key.startswith("claude"):
            for family in CLAUDE_FAMILIES:
                if family in key:
                    return self.newest(family, ids)
        return None

    @staticmethod
    def newest(family: str, ids: Mapping[str, str]) -> Optional[str]:
        members = [m for m in ids.values() if _KIRO_ID.match(m) and _KIRO_ID.match(m).group(1) == family]
        if not members:
            return None
        return max(members, key=version_key)
