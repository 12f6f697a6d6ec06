"""A run's system log carries the service's own wording only (issue 11, finding 1): an
exception's text from outside the service (an OS error naming a file, a tool's output)
stays in the service log."""

from __future__ import annotations

from spe.domain.errors import Forbidden
from spe.services.execution import service_reason


def test_foreign_exception_text_never_reaches_the_system_log() -> None:
    reason = service_reason(OSError(2, "No such file", "/data/cohort/Zephyrine.tsv"))
    assert "Zephyrine" not in reason and reason.startswith("FileNotFoundError")
    assert "Zephyrine" not in service_reason(RuntimeError("header is ['Zephyrine']"))


def test_the_services_own_messages_are_kept() -> None:
    message = "project 'p' has no posix_group; its runs cannot execute on the cluster"
    assert service_reason(Forbidden(message)) == message
