"""What Flow refuses: a value at fault, named by its field, with the HTTP status the API answers."""
from __future__ import annotations

from deepwater.errors import ParameterError


class FieldError(ParameterError):
    """A value Flow refuses: the field at fault ('params.epochs', 'frame', 'x[2]') and why."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status
