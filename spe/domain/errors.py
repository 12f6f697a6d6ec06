"""Domain errors: plain exceptions that carry data. ``spe.api.errors`` maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """Base class. ``str(err)`` is a message safe to show to the caller."""


class Unauthenticated(DomainError):
    """No credentials, or credentials that do not verify."""


class IdentityProviderUnavailable(DomainError):
    """The issuer's discovery document or keys could not be fetched."""


class Forbidden(DomainError):
    """The caller is known but the action is not allowed; ``rule`` names the rule."""

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class NotOnAllowlist(Forbidden):
    """The workflow is not an approved catalog entry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, rule="allowlist")


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it exists."""


class InvalidRequest(DomainError):
    """Bad input. ``errors`` lists ``(json_pointer, message)`` pairs where known."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    def __str__(self) -> str:
        base = super().__str__()
        if not self.errors:
            return base
        details = "; ".join(f"{ptr or '/'}: {msg}" for ptr, msg in self.errors)
        return f"{base}: {details}"


class PayloadTooLarge(DomainError):
    """A request or an attachment is over its size limit."""


class Conflict(DomainError):
    """The action does not fit the current state (e.g. cancelling a finished run)."""


class TooManyRequests(DomainError):
    """A client is over a rate limit; ``retry_after`` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency is down; the caller may retry later."""
