"""One exception tree for everything relay reports.

::

    RelayError                      message, code; exit status 1 in the CLI
    ├── ConfigError                 a setting that does not parse
    ├── StoreUnavailable            Redis unreachable or too slow      503
    └── ApiError                    anything an API client is told     status
        ├── BadRequest              malformed JSON, bad cursor         400
        ├── Unauthorized            missing or wrong token             401
        ├── NotFound                unknown id, route or event name    404
        ├── MethodNotAllowed        wrong method on a route            405
        ├── PayloadTooLarge         body over RELAY_MAX_BODY_BYTES     413
        ├── UnsupportedMediaType    body that is not JSON              415
        └── ValidationFailed        well-formed but invalid input      422

An API error renders itself as ``{"error": {"code", "message", "details"?}}``;
the CLI prints ``message`` on one line and exits with ``exit_code``.
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """Base of every error relay raises on purpose."""

    code = "relay_error"
    exit_code = 1

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(RelayError):
    """A setting from the environment that cannot be used."""

    code = "config_error"


class StoreUnavailable(RelayError):
    """Redis did not answer in time; nothing was stored."""

    code = "store_unavailable"
    status = 503


class ApiError(RelayError):
    """An error an API client is shown, with its HTTP status."""

    status = 400

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ApiError):
    """The request is malformed (for example, its JSON does not parse)."""

    code = "bad_request"
    status = 400


class Unauthorized(ApiError):
    """The request carries no token, or the wrong one."""

    code = "unauthorized"
    status = 401


class NotFound(ApiError):
    """The id, route or event name is unknown."""

    code = "not_found"
    status = 404


class MethodNotAllowed(ApiError):
    """The route exists, but not with this method."""

    code = "method_not_allowed"
    status = 405


class PayloadTooLarge(ApiError):
    """The body is larger than the configured limit."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ApiError):
    """The body is not declared as JSON."""

    code = "unsupported_media_type"
    status = 415


class ValidationFailed(ApiError):
    """The body is JSON but not a valid payload; ``details`` says why."""

    code = "validation_failed"
    status = 422
