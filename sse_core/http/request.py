"""Checking an SSE request before the stream starts: who is asking, for what, from where.

Everything that can be wrong with a request is found here and turned into a
:class:`RequestRejected` (status + JSON body) while the response can still be an error; once the
``200`` is sent, nothing can fail on bad input any more. Framework-free: the Tornado and ASGI
adapters pass in the query arguments and the two headers that matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from sse_core.categories import SSEEventCategory, parse_category_list
from sse_core.http.tokens import TokenError, TokenSigner
from sse_core.ids import parse_event_id, parse_user_id

REALM = "ssewatch"


class RequestRejected(Exception):
    """An HTTP error to answer instead of a stream: ``status`` and a JSON body naming the fault."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.parameter = parameter
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.parameter is not None:
            body["parameter"] = self.parameter
        return body


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A checked request: the token's user, the category filter, and where to resume."""

    user_id: UUID
    categories: list[SSEEventCategory] = field(default_factory=list)
    last_event_id: UUID | None = None
    expires_at: float | None = None  # unix seconds when the token stops being valid


def bearer_token(authorization: str | None, query: Mapping[str, Sequence[str]]) -> str | None:
    """``Authorization: Bearer`` wins; ``?token=`` is for ``EventSource``, which sends no headers.

    Any other ``Authorization`` scheme (say, a proxy's Basic auth) is not ours and is ignored.
    """
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    tokens = query.get("token") or []
    if len(tokens) > 1:
        raise TokenError("malformed", "malformed token: ?token= given more than once")
    return tokens[0] if tokens else None


def redact_token(uri: str) -> str:
    """``uri`` with any ``token`` query value masked, for access logs."""
    parts = urlsplit(uri)
    if "token" not in parts.query:
        return uri
    query = [
        (k, "***" if k == "token" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*,")))


def unauthorized(error: TokenError) -> RequestRejected:
    """401 with an RFC 6750 challenge, so clients can tell 'log in' from 'refresh the token'."""
    challenge = f'Bearer realm="{REALM}"'
    if error.problem != "missing":
        challenge += f', error="invalid_token", error_description="{error}"'
    return RequestRejected(
        401, f"token_{error.problem}", str(error), headers={"WWW-Authenticate": challenge}
    )


def _bad_request(parameter: str, error: ValueError) -> RequestRejected:
    return RequestRejected(400, "invalid_request", str(error), parameter=parameter)


def _single(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The parameter's one value (``None`` if absent or blank); given twice is a 400: which one
    a proxy, a cache or a framework would pick differs, so none is guessed."""
    values = query.get(name) or []
    if len(values) > 1:
        raise RequestRejected(
            400,
            "invalid_request",
            f"{name} given more than once; give it once",
            parameter=name,
        )
    return values[0] if values and values[0].strip() else None


def check_stream_request(
    signer: TokenSigner,
    query: Mapping[str, Sequence[str]],
    *,
    authorization: str | None = None,
    last_event_id_header: str | None = None,
) -> StreamRequest:
    """Authenticate (401), authorize (403), then validate the parameters (400).

    Authentication comes first so that an anonymous caller learns nothing about the API. The
    ``Last-Event-ID`` header (sent by a reconnecting ``EventSource``) wins over the
    ``last_event_id`` parameter (for the first connection).
    """
    try:
        token = signer.verify(bearer_token(authorization, query))
    except TokenError as exc:
        raise unauthorized(exc) from None

    requested_user = _single(query, "user")
    if requested_user is not None:
        try:
            user = parse_user_id(requested_user)
        except ValueError as exc:
            raise _bad_request("user", exc) from None
        if user != token.user_id:
            raise RequestRejected(
                403, "forbidden", "the token does not grant access to this user's stream"
            )

    try:
        categories = parse_category_list(query.get("categories") or [])
    except ValueError as exc:
        raise _bad_request("categories", exc) from None

    header_id = (last_event_id_header or "").strip() or None
    raw_id, source = (
        (header_id, "Last-Event-ID") if header_id else (_single(query, "last_event_id"), None)
    )
    try:
        last_event_id = parse_event_id(raw_id) if raw_id is not None else None
    except ValueError as exc:
        raise _bad_request(source or "last_event_id", exc) from None

    return StreamRequest(token.user_id, categories, last_event_id, float(token.expires_at))
