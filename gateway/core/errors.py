"""The gateway's one exception tree; every refusal a client can see is one of these.

::

    GatewayError                      500 INTERNAL
    ├── BadRequest                    400 BAD_REQUEST
    │   ├── InvalidPath               400 INVALID_PATH
    │   ├── WorkspaceRequired         400 WORKSPACE_REQUIRED
    │   ├── InvalidWorkspace          400 INVALID_WORKSPACE
    │   ├── MultipleCredentials       400 MULTIPLE_CREDENTIALS
    │   ├── UpgradeNotAllowed         400 UPGRADE_NOT_ALLOWED
    │   └── InvalidArgument           400 INVALID_ARGUMENT
    ├── OAuthError                    400 OAUTH_ERROR (RFC 6749 §5.2: {"error", "error_description"})
    │   └── InvalidClient             401 OAUTH_ERROR (error=invalid_client, with a challenge)
    ├── AuthenticationError           401 UNAUTHORIZED
    │   └── LoginLinkInvalid          401 LOGIN_LINK_INVALID (dashboard sign-in link bad/expired/used)
    ├── PermissionDenied              403 FORBIDDEN
    │   ├── InsufficientScope         403 FORBIDDEN (names the required scopes)
    │   ├── WorkspaceDenied           403 WORKSPACE_ACCESS_DENIED
    │   ├── OriginDenied              403 ORIGIN_NOT_ALLOWED
    │   ├── PlanRequired              403 PLAN_REQUIRED
    │   ├── EnvironmentUnavailable    403 ENVIRONMENT_UNAVAILABLE (no upstream for sk_test_ etc.)
    │   └── CsrfFailed                403 CSRF_FAILED (dashboard form/call without its CSRF token)
    ├── UntrustedProxy                403 UNTRUSTED_PROXY (decision endpoint called by a non-proxy)
    ├── RouteNotFound                 404 NOT_FOUND
    ├── MethodNotAllowed              405 METHOD_NOT_ALLOWED
    ├── BodyTimeout                   408 REQUEST_TIMEOUT (the client paused its body too long)
    ├── Conflict                      409 CONFLICT (the thing to create exists already)
    ├── PayloadTooLarge               413 PAYLOAD_TOO_LARGE
    ├── ExpectationFailed             417 EXPECTATION_FAILED (an Expect other than 100-continue)
    ├── RateLimited                   429 RATE_LIMITED
    ├── UpstreamUnavailable           502 UPSTREAM_UNAVAILABLE
    ├── StoreUnavailable              503 STORE_UNAVAILABLE
    ├── UpstreamBusy                  503 UPSTREAM_BUSY (the upstream's connection cap is reached)
    ├── RateLimiterUnavailable        503 RATE_LIMIT_UNAVAILABLE (Redis down, fail_closed)
    └── UpstreamTimeout               504 UPSTREAM_TIMEOUT

Each class carries its HTTP status and a stable ``code``; ``reason`` is a finer, stable id for logs
and metrics (``expired``, ``revoked``, ``bad_checksum`` …) that is never shown to the client when it
would help a guesser. Rendering lives in :mod:`gateway.edge.responses`; third-party exceptions are
translated into these only at the edge that calls the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BodyTimeout",
    "Conflict",
    "CsrfFailed",
    "EnvironmentUnavailable",
    "ExpectationFailed",
    "GatewayError",
    "InsufficientScope",
    "InvalidArgument",
    "InvalidClient",
    "InvalidPath",
    "InvalidWorkspace",
    "LoginLinkInvalid",
    "MethodNotAllowed",
    "MultipleCredentials",
    "NotFound",
    "OAuthError",
    "OriginDenied",
    "PayloadTooLarge",
    "PermissionDenied",
    "PlanRequired",
    "RateLimited",
    "RateLimiterUnavailable",
    "RouteNotFound",
    "StoreUnavailable",
    "UntrustedProxy",
    "UpgradeNotAllowed",
    "UpstreamBusy",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "WorkspaceDenied",
    "WorkspaceRequired",
]


class GatewayError(Exception):
    """Base of every error the gateway turns into a response."""

    status: int = 500
    code: str = "INTERNAL"
    default_message: str = "Internal gateway error."

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.reason = reason or self.code.lower()
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)


class BadRequest(GatewayError):
    status = 400
    code = "BAD_REQUEST"
    default_message = "The request is malformed."


class InvalidPath(BadRequest):
    code = "INVALID_PATH"
    default_message = "The request path is not in canonical form."


class WorkspaceRequired(BadRequest):
    code = "WORKSPACE_REQUIRED"
    default_message = "A workspace must be specified."


class InvalidWorkspace(BadRequest):
    code = "INVALID_WORKSPACE"
    default_message = "The workspace identifier is malformed."


class MultipleCredentials(BadRequest):
    code = "MULTIPLE_CREDENTIALS"
    default_message = "Send exactly one credential."


class UpgradeNotAllowed(BadRequest):
    code = "UPGRADE_NOT_ALLOWED"
    default_message = "This protocol upgrade is not allowed."


class InvalidArgument(BadRequest):
    code = "INVALID_ARGUMENT"
    default_message = "An argument is invalid."


class OAuthError(GatewayError):
    """An authorization-server error (RFC 6749 §5.2, §4.1.2.1): ``error`` is the RFC's code, the
    message its description. Rendered in the RFC's envelope whatever the configured one."""

    status = 400
    code = "OAUTH_ERROR"

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description, reason=error)
        self.error = error
        self.status = status


class InvalidClient(OAuthError):
    """Client authentication failed (401). ``basic``: the client tried HTTP Basic, so the
    challenge is Basic (RFC 6749 §5.2); otherwise Bearer."""

    def __init__(self, description: str, *, basic: bool) -> None:
        super().__init__("invalid_client", description, 401)
        self.basic = basic


class AuthenticationError(GatewayError):
    status = 401
    code = "UNAUTHORIZED"
    default_message = "Authentication required."


class PermissionDenied(GatewayError):
    status = 403
    code = "FORBIDDEN"
    default_message = "You do not have permission to perform this action."


class InsufficientScope(PermissionDenied):
    default_message = "The token lacks a scope this endpoint requires."

    def __init__(
        self, required: Iterable[str], *, all_of: bool, message: str | None = None
    ) -> None:
        self.required = tuple(required)
        self.all_of = all_of
        joined = " ".join(self.required)
        which = "all of" if all_of else "one of"
        super().__init__(
            message or f"The token lacks the required scope ({which}: {joined}).",
            reason="insufficient_scope",
        )


class WorkspaceDenied(PermissionDenied):
    code = "WORKSPACE_ACCESS_DENIED"
    default_message = "The token does not have access to this workspace."


class OriginDenied(PermissionDenied):
    code = "ORIGIN_NOT_ALLOWED"
    default_message = "This key is not allowed from this origin."


class PlanRequired(PermissionDenied):
    code = "PLAN_REQUIRED"
    default_message = "This feature requires a higher plan."


class NotFound(GatewayError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Not found."


class RouteNotFound(NotFound):
    default_message = "No route matches this request."


class MethodNotAllowed(GatewayError):
    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "This method is not allowed on this path."


class BodyTimeout(GatewayError):
    status = 408
    code = "REQUEST_TIMEOUT"
    default_message = "The request body stopped arriving; send it without long pauses."


class ExpectationFailed(GatewayError):
    status = 417
    code = "EXPECTATION_FAILED"
    default_message = "The only expectation this gateway meets is 100-continue."


class Conflict(GatewayError):
    status = 409
    code = "CONFLICT"
    default_message = "It exists already."


class PayloadTooLarge(GatewayError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body is too large."


class RateLimited(GatewayError):
    status = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests."


class UpstreamUnavailable(GatewayError):
    status = 502
    code = "UPSTREAM_UNAVAILABLE"
    default_message = "The upstream service is unavailable."


class UpstreamBusy(GatewayError):
    status = 503
    code = "UPSTREAM_BUSY"
    default_message = "The upstream service is at its connection limit; retry shortly."


class StoreUnavailable(GatewayError):
    status = 503
    code = "STORE_UNAVAILABLE"
    default_message = "The token store is unavailable; try again shortly."


class RateLimiterUnavailable(GatewayError):
    status = 503
    code = "RATE_LIMIT_UNAVAILABLE"
    default_message = "Rate limits cannot be checked right now; try again shortly."


class EnvironmentUnavailable(PermissionDenied):
    code = "ENVIRONMENT_UNAVAILABLE"
    default_message = "No upstream is configured for this token's environment."


class UpstreamTimeout(GatewayError):
    status = 504
    code = "UPSTREAM_TIMEOUT"
    default_message = "The upstream service did not answer in time."


class LoginLinkInvalid(AuthenticationError):
    code = "LOGIN_LINK_INVALID"
    default_message = "This sign-in link is invalid, has expired, or was already used."


class CsrfFailed(PermissionDenied):
    code = "CSRF_FAILED"
    default_message = "The request lacks a valid CSRF token; reload the page and try again."


class UntrustedProxy(GatewayError):
    """The external-authorization endpoint was called from outside ``trusted_proxies``.

    Not a :class:`PermissionDenied`: the caller is not a token holder lacking a permission (no
    ``WWW-Authenticate`` challenge applies), it is not the proxy the endpoint answers.
    """

    status = 403
    code = "UNTRUSTED_PROXY"
    default_message = "Decision requests are accepted only from trusted_proxies."
