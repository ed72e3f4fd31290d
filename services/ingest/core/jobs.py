"""Job and per-file outcome types of an ingest, shared by the pipeline, the store and the servicer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from services.ingest.core.errors import IngestError, TooLarge, UnsupportedFormat
from services.ingest.core.types import ParseOptions


class JobState(StrEnum):
    """Lifecycle of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FileStatus(StrEnum):
    """What happened to one file."""

    PENDING = "pending"
    INGESTED = "ingested"
    UNCHANGED = "unchanged"
    UNSUPPORTED = "unsupported"
    INVALID = "invalid"
    TOO_LARGE = "too_large"


def status_for_error(exc: IngestError) -> FileStatus:
    """The file status an ingest error means."""
    if isinstance(exc, UnsupportedFormat):
        return FileStatus.UNSUPPORTED
    if isinstance(exc, TooLarge):
        return FileStatus.TOO_LARGE
    return FileStatus.INVALID


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file (or archive member) of a job."""

    ordinal: int
    path: str
    status: FileStatus = FileStatus.PENDING
    platform: str = ""
    documents: int = 0
    documents_unchanged: int = 0
    duplicates_dropped: int = 0
    records_excluded: int = 0
    chunks_inserted: int = 0
    chunks_unchanged: int = 0
    error: str = ""


@dataclass(frozen=True)
class Job:
    """A snapshot of an ingest job.

    Attributes:
        files: Finished files in order, plus (while running) the file in progress with status PENDING.
    """

    job_id: str
    creator_id: str
    root: str
    options: ParseOptions = field(default_factory=ParseOptions)
    state: JobState = JobState.QUEUED
    files_total: int = 0
    files: tuple[FileOutcome, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str = ""

    @property
    def files_done(self) -> int:
        """Files finished, ingested or not."""
        return sum(1 for f in self.files if f.status is not FileStatus.PENDING)

    @property
    def files_failed(self) -> int:
        """Files rejected as invalid or too large."""
        return sum(1 for f in self.files if f.status in (FileStatus.INVALID, FileStatus.TOO_LARGE))

    @property
    def chunks_inserted(self) -> int:
        """Chunks newly stored across files."""
        return sum(f.chunks_inserted for f in self.files)

    @property
    def chunks_unchanged(self) -> int:
        """Chunks that were already stored."""
        return sum(f.chunks_unchanged for f in self.files)

    @property
    def finished(self) -> bool:
        """Whether the job has ended."""
        return self.state in (JobState.SUCCEEDED, JobState.FAILED)


def new_job(creator_id: str, root: str, options: ParseOptions | None = None) -> Job:
    """A fresh queued job."""
    return Job(job_id=uuid.uuid4().hex, creator_id=creator_id, root=root, options=options or ParseOptions())
