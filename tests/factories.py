"""Builders for test data: Kiro token files, chat requests, client bodies."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Optional

from kiroproxy import chat

_counter = itertools.count(1)


def refresh_token(tag: str = "") -> str:
    """A refresh token long enough to pass the truncation check (>= 100 chars)."""
    tag = tag or f"rt{next(_counter)}"
    return ("aor" + tag + "x" * 120)[:140]


def iso_in(seconds: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def token_file(access: str = "acc-A", *, refresh: Optional[str] = None, expires_in: float = 3600,
               auth_method: str = "social", provider: str = "Google", **extra: Any) -> Dict[str, Any]:
    """A Kiro token file exactly as Kiro writes ~/.aws/sso/cache/kiro-auth-token.json."""
    data: Dict[str, Any] = {
        "accessToken": access,
        "refreshToken": refresh or refresh_token(access),
        "expiresAt": iso_in(expires_in),
        "authMethod": auth_method,
        "provider": provider,
    }
    if auth_method == "social":
        data["profileArn"] = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
    else:
        data.update({"clientId": "client-" + access, "clientSecret": "secret-" + access,
                     "region": "us-east-1", "clientIdHash": "a" * 40})
    data.update(extra)
    return data


def request(*texts: str, model: str = "claude-sonnet-4.5", **kw: Any) -> chat.ChatRequest:
    messages = tuple(chat.Message("user" if i % 2 == 0 else "assistant", (chat.Text(t),))
                     for i, t in enumerate(texts or ("hi",)))
    return chat.ChatRequest(model=model, messages=messages, **kw)


def anthropic_body(text: str = "hi", **kw: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024,
                            "messages": [{"role": "user", "content": text}]}
    body.update(kw)
    return body


def token_like(prefix: str, body: str) -> str:
    """A fake credential shaped like a real one (aoa…, aor…, sk-ant-…), assembled at run time so the
    repository holds no literal that looks like a leaked token."""
    return prefix + body
