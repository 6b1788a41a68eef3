"""One exception hierarchy for the whole platform.

Every error carries an HTTP status, a Kubernetes-style reason code, a message that says what
to do, and (for validation errors) the path of the offending field.
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class BadRequest(ShipyardError):
    status = 400
    code = "BadRequest"


class Invalid(ShipyardError):
    """A resource failed validation; ``field`` names the path (``spec.containers[0].name``)."""

    status = 422
    code = "Invalid"


class NotFound(ShipyardError):
    status = 404
    code = "NotFound"


class AlreadyExists(ShipyardError):
    status = 409
    code = "AlreadyExists"


class Conflict(ShipyardError):
    """An update carried a stale resourceVersion."""

    status = 409
    code = "Conflict"


class Forbidden(ShipyardError):
    """Admission refused the request (quota, authorization)."""

    status = 403
    code = "Forbidden"


class Gone(ShipyardError):
    """A watch asked for a resourceVersion older than the retained event log."""

    status = 410
    code = "Expired"


class Unavailable(ShipyardError):
    status = 503
    code = "ServiceUnavailable"


def from_dict(status: int, body: dict[str, object]) -> ShipyardError:
    """Rebuild an error received over HTTP."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ShipyardError(f"HTTP {status}: {body}")
    cls = next(
        (c for c in _ALL if c.code == err.get("code")),
        next((c for c in _ALL if c.status == status), ShipyardError),
    )
    field = err.get("field")
    exc = cls(str(err.get("message", "")), field=str(field) if field else None)
    exc.status = status
    return exc


_ALL: tuple[type[ShipyardError], ...] = (
    BadRequest,
    Invalid,
    NotFound,
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    Unavailable,
)
