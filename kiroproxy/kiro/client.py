"""HTTP calls to Kiro's services: the chat stream, the model catalogue and usage limits.

Raises KiroFailure (classified) for every upstream failure, network errors included. open()
returns a ChatStream the caller owns and closes.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urlsplit

from ..chat import ChatRequest, Event
from ..errors import UpstreamError, UpstreamTimeout
from . import errors, payload
from .credentials import DEFAULT_SOCIAL_PROFILE, IDC, Credentials
from .errors import KiroFailure
from .models import ModelInfo
from .stream import ChatStream
from .transport import ClientIdentity, Endpoints, Sessions

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 65536


def _origin(exc: requests.RequestException) -> str:
    """" (scheme://host)" of the URL the failed request went to, "" when unknown."""
    url = getattr(getattr(exc, "request", None), "url", None) or ""
    parts = urlsplit(url)
    return f" ({parts.scheme}://{parts.hostname})" if parts.scheme and parts.hostname else ""


def network_failure(exc: requests.RequestException, what: str) -> KiroFailure:
    import requests

    if isinstance(exc, requests.Timeout):
        error: UpstreamError = UpstreamTimeout(f"Kiro{_origin(exc)} did not answer the {what} in time")
    else:
        error = UpstreamError(f"could not reach Kiro{_origin(exc)} for the {what} ({type(exc).__name__})",
                              status=503, kind="overloaded")
    return KiroFailure(errors.ROTATE, error, cooldown=5.0, same_account_retry=True)


class KiroClient:
    def __init__(self, endpoints: Endpoints, sessions: Sessions, identity: ClientIdentity, *,
                 connect_timeout: float = 10.0, first_event_timeout: float = 15.0, read_timeout: float = 300.0,
                 max_body_bytes: int = 600_000) -> None:
        self.endpoints = endpoints
        self.sessions = sessions
        self.identity = identity
        self.connect_timeout = connect_timeout
        self.first_event_timeout = first_event_timeout
        self.read_timeout = read_timeout  # seconds between events once the answer started
        self.max_body_bytes = max_body_bytes

    @staticmethod
    def profile_for(creds: Credentials) -> Optional[str]:
        if creds.profile_arn:
            return creds.profile_arn
        if creds.auth_method != IDC:
            return DEFAULT_SOCIAL_PROFILE
        return None

    def open(self, creds: Credentials, req: ChatRequest, *, model_id: str, conversation_id: str,
             thinking_efforts: Optional[tuple] = None,
             reauthorize: Optional[Callable[[Credentials, KiroFailure], Credentials]] = None) -> ChatStream:
        """The answer to `req` as a lazy ChatStream (see there); raises TooLarge for a payload over
        the size limit now. Iterating raises KiroFailure for failures before the first event.

        The account's hosts are tried in order. When Kiro rejects the token, `reauthorize` (called
        at most once per host, on the iterating thread) returns fresh credentials to retry with.
        """
        built = self._payload(creds, req, model_id, conversation_id, thinking_efforts)
        session = self.sessions.for_account(creds)  # this thread's: the stream may be read on another

        def answer(stream: ChatStream) -> Iterator[List[Event]]:
            current, body = creds, built
            hosts = self.endpoints.chat_hosts(current)
            for index, host in enumerate(hosts):
                for refreshed in (False, True):
                    if stream.aborted:
                        return
                    try:
                        batches = stream.read(self._post_chat(current, body.body, host, session), body.tool_names,
                                              self.read_timeout)
                        first = next(batches, None)
                    except KiroFailure as failure:
                        if failure.action == errors.REFRESH and not refreshed and reauthorize is not None:
                            current = reauthorize(current, failure)
                            body = self._payload(current, req, model_id, conversation_id, thinking_efforts)
                            continue
                        if failure.action == errors.PROFILE and index + 1 < len(hosts):
                            break  # this host needs a profile ARN: the next one may not
                        raise
                    if first is not None:
                        yield first
                        yield from batches
                    return
            raise KiroFailure(errors.FAIL, UpstreamError("Kiro rejected every endpoint for this account"))

        return ChatStream(answer)

    def _payload(self, creds: Credentials, req: ChatRequest, model_id: str, conversation_id: str,
                 thinking_efforts: Optional[tuple]) -> payload.Payload:
        return payload.build(req, model_id=model_id, profile_arn=self.profile_for(creds),
                             conversation_id=conversation_id, max_body_bytes=self.max_body_bytes,
                             native_thinking_efforts=thinking_efforts)

    def _post_chat(self, creds: Credentials, body: Dict[str, Any], host: str,
                   session: requests.Session) -> requests.Response:
        """POST the payload and return the 200 streaming response (read timeout = first event)."""
        import requests

        url = host + "/generateAssistantResponse"
        # Lone surrogates (a cut emoji, binary tool output) cannot be UTF-8; the web layer already
        # replaces them, and Kiro must never get surrogate bytes (surrogatepass), so replace here too.
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        try:
            with self.sessions.ahead():  # a connection opened before this request, if one is warm
                response = self.sessions.post(session, url, data=data, headers=self.identity.chat_headers(creds),
                                              timeout=(self.connect_timeout, self.first_event_timeout))
        except requests.RequestException as exc:
            raise network_failure(exc, "chat request") from None
        if response.status_code != 200:
            # Reading to the end hands the connection back to the pool, but we asked for
            # Connection: close and the server is closing it: reusing it would fail the next call.
            connection = getattr(response.raw, "connection", None)
            try:
                text = _read_limited(response)
            finally:
                response.close()
                if connection is not None:
                    connection.close()
            raise errors.classify(response.status_code, text, response.headers.get("Retry-After"))
        return response

    def list_models(self, creds: Credentials) -> List[ModelInfo]:
        """The account's model catalogue, all pages."""
        models: List[ModelInfo] = []
        params: Dict[str, Any] = {"origin": "AI_EDITOR", "maxResults": 50}
        profile = self.profile_for(creds)
        if profile:
            params["profileArn"] = profile
        for _ in range(20):
            data = self._get(creds, "/ListAvailableModels", params, "model list")
            for item in data.get("models") or []:
                info = model_from_catalogue(item)
                if info:
                    models.append(info)
            token = data.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        return models

    def usage_limits(self, creds: Credentials) -> Dict[str, Any]:
        params: Dict[str, Any] = {"origin": "AI_EDITOR", "resourceType": "AGENTIC_REQUEST",
                                  "isEmailRequired": "true"}
        profile = self.profile_for(creds)
        if profile:
            params["profileArn"] = profile
        return self._get(creds, "/getUsageLimits", params, "usage query")

    def _get(self, creds: Credentials, path: str, params: Dict[str, Any], what: str) -> Dict[str, Any]:
        import requests

        url = self.endpoints.management_host(creds) + path
        headers = self.identity.chat_headers(creds, streaming=False, api="codewhispererruntime")
        try:
            response = self.sessions.for_account(creds).get(
                url, params=params, headers=headers, timeout=(self.connect_timeout, 30.0))
        except requests.RequestException as exc:
            raise network_failure(exc, what) from None
        if response.status_code != 200:
            raise errors.classify(response.status_code, response.text[:MAX_ERROR_BODY],
                                  response.headers.get("Retry-After"))
        try:
            data = response.json()
        except ValueError:
            raise KiroFailure(errors.ROTATE, UpstreamError(f"Kiro answered the {what} with invalid JSON")) from None
        if not isinstance(data, dict):
            raise KiroFailure(errors.ROTATE, UpstreamError(f"Kiro answered the {what} with unexpected JSON"))
        return data


def _read_limited(response: requests.Response) -> str:
    import requests

    chunks = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ERROR_BODY:
                break
    except requests.RequestException:
        pass
    return b"".join(chunks).decode("utf-8", "replace")


def model_from_catalogue(item: Any) -> Optional[ModelInfo]:
    if not isinstance(item, dict) or not item.get("modelId"):
        return None
    limits = item.get("tokenLimits") or {}
    inputs = item.get("supportedInputTypes") or ["TEXT", "IMAGE"]
    efforts = None
    schema = item.get("additionalModelRequestFieldsSchema")
    if isinstance(schema, dict):
        efforts = _efforts(schema)
    return ModelInfo(
        id=str(item["modelId"]),
        name=str(item.get("modelName") or item["modelId"]),
        context_window=int(limits.get("maxInputTokens") or 200_000),
        max_output=int(limits.get("maxOutputTokens") or 64_000),
        images="IMAGE" in inputs,
        thinking_efforts=efforts,
        rate=item.get("rateMultiplier"),
    )


def _efforts(schema: Dict[str, Any]) -> Optional[tuple]:
    """Effort levels from the catalogue's request-field schema, if it declares native thinking."""
    props = schema.get("properties") or {}
    if not props:
        return None
    output = (props.get("output_config") or {}).get("properties") or {}
    enum = (output.get("effort") or {}).get("enum")
    if isinstance(enum, list) and enum:
        return tuple(str(e) for e in enum)
    if "thinking" in props:
        return ("low", "medium", "high")
    return None
