"""The errors services raise, each with a message for the person who asked; app.web.errors turns them into a
page, an htmx fragment or JSON with the right status, in one place."""


class ServiceError(Exception):
    """A request a service refuses; `message` is shown to the user as it is."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def fields(self) -> dict[str, str]:
        """What is wrong with each named field (the API's `fields`)."""
        return {}


class PermissionDenied(ServiceError):
    """The user's role does not allow this action."""

    status = 403


class NotFound(ServiceError):
    """The thing does not exist, or the user may not see it."""

    status = 404


class Conflict(ServiceError):
    """The thing is not in a state that allows this now (a draft, a disabled workflow, a finished run)."""

    status = 409


class Invalid(ServiceError):
    """Bad input: `field` names the field the message is about; `fields` holds a message per field when several
    are wrong. `str()` reads "field: message", as a command line shows it."""

    status = 422

    def __init__(self, message: str, field: str | None = None, *, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.field = field
        self._fields = dict(fields) if fields else ({field: message} if field else {})

    @property
    def fields(self) -> dict[str, str]:
        return self._fields

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message
