"""Render WatchJob updates as a one-line terminal progress bar (for ``avatar ingest``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from avatar.v1 import ingest_service_pb2 as pb

BAR_WIDTH = 30


def render_line(job: pb.Job, width: int = BAR_WIDTH) -> str:
    """One line describing a job snapshot: bar, files, chunks, the file in progress.

    Args:
        job: A snapshot from WatchJob or GetJob.
        width: Characters of the bar.

    Returns:
        e.g. ``[###############---------------]  3/6 files  120 new, 4 unchanged  posts_1.json``.
    """
    total = max(job.files_total, 1)
    filled = min(width, job.files_done * width // total)
    current = next((f.path for f in job.files if f.status == pb.FILE_STATUS_PENDING), "")
    state = pb.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
    failed = f", {job.files_failed} failed" if job.files_failed else ""
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] {job.files_done}/{job.files_total} files{failed}  "
        f"{job.chunks_inserted} new, {job.chunks_unchanged} unchanged  {current or state}"
    )


def render_progress(updates: Iterable[pb.WatchJobResponse], out: TextIO = sys.stderr) -> pb.Job | None:
    """Draw each update over the previous one (carriage return) and end the line when the job ends.

    Args:
        updates: The WatchJob response stream (a sync gRPC iterator works).
        out: Where to draw; a non-terminal gets one line per update instead.

    Returns:
        The last job snapshot, or ``None`` for an empty stream.
    """
    last: pb.Job | None = None
    tty = out.isatty()
    for update in updates:
        last = update.job
        line = render_line(last)
        out.write(f"\r\x1b[2K{line}" if tty else f"{line}\n")
        out.flush()
    if last is not None and tty:
        out.write("\n")
    return last
