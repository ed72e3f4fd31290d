"""Domain exceptions of the ingest core; the server maps them to gRPC status codes."""

from __future__ import annotations

from pathlib import PurePath


class IngestError(Exception):
    """Base class of every error the ingest core raises on bad or unsupported input."""

    def __init__(self, path: PurePath | str, message: str) -> None:
        self.path = str(path)
        super().__init__(message)


class UnsupportedFormat(IngestError):
    """The file's format is not one the ingest core can parse."""

    def __init__(self, path: PurePath | str) -> None:
        super().__init__(path, f"{path}: unsupported format")


class InvalidInput(IngestError):
    """The file has a supported format but its content is malformed.

    Attributes:
        reason: What is wrong, including the line number where one applies.
    """

    def __init__(self, path: PurePath | str, reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"{path}: {reason}")


class TooLarge(IngestError):
    """The input exceeds a size limit (bytes, archive entries, expansion ratio).

    Attributes:
        limit: The limit that was exceeded, in the unit the message names.
    """

    def __init__(self, path: PurePath | str, reason: str, limit: int = 0) -> None:
        self.reason = reason
        self.limit = limit
        super().__init__(path, f"{path}: {reason}")
