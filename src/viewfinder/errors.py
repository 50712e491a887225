"""Domain errors. Adapters map them to their own vocabulary (HTTP status codes, exit codes)
in one place each; nothing below the adapters knows about HTTP."""

from __future__ import annotations


class ViewfinderError(Exception):
    """Base of every error Viewfinder raises on purpose; ``str(err)`` is for the user."""


class InvalidInputError(ViewfinderError):
    """The caller sent something malformed (maps to 400)."""


class InvalidImageError(InvalidInputError):
    """The bytes are not an image we can decode."""


class FetchError(InvalidInputError):
    """An image URL could not be downloaded (refused, unreachable, bad status, too large)."""


class InvalidRequestError(ViewfinderError):
    """The request is well-formed but cannot be carried out as given (maps to 422)."""


class TooLargeError(ViewfinderError):
    """An upload, download or image exceeds a configured limit (maps to 413)."""


class NotFoundError(ViewfinderError):
    """A named thing does not exist (maps to 404)."""


class ConflictError(ViewfinderError):
    """The request conflicts with the current state (maps to 409)."""


class OverloadedError(ViewfinderError):
    """A model's queue is full; the caller should retry after ``retry_after_s`` (maps to 429)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelUnavailableError(ViewfinderError):
    """A model cannot be loaded (no local copy and no network, gated repo, bad file)."""


class StorageError(ViewfinderError):
    """The blob store cannot be used: missing bucket, denied access, unreachable endpoint
    (maps to 503; at start-up it stops the server with this message)."""


class DeviceUnavailableError(ViewfinderError):
    """The configured device cannot be used (for example a GPU is required and absent)."""
