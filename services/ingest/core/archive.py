"""What to read from an ingest root: files on disk and members of .zip archives, safely.

An archive is checked as a whole before anything in it is read: a member whose name escapes the
archive (absolute, ``..``, a drive letter), a symlink member, too many members, too many bytes
declared in total, or a member that claims an implausible compression ratio rejects the archive.
Declared sizes can lie, so every read also counts the bytes actually inflated and stops at the limit.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.ingest.core.errors import IngestError, InvalidInput, TooLarge
from services.ingest.core.types import ParseOptions

_READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One file to ingest.

    Attributes:
        rel: Path relative to the ingest root; archive members are ``<archive>/<member>``.
        size: Size in bytes as declared by the file system or the archive.
        read: Returns the bytes, enforcing the size limit on what is actually read.
        error: Why the entry cannot be ingested, when that is known before reading it.
    """

    rel: PurePosixPath
    size: int
    read: Callable[[], bytes]
    error: IngestError | None = None


def list_entries(root: Path, options: ParseOptions) -> list[Entry]:
    """Every entry under ``root`` (a file, a directory or a .zip) in a deterministic order.

    Directories are walked recursively in name order, skipping hidden names and symlinks (an upload
    must not point the ingester outside itself). A .zip is replaced by its members, or by one entry
    carrying the archive's error.

    Raises:
        InvalidInput: ``root`` does not exist.
    """
    from services.ingest.core.parsers import iter_files  # parsers imports this module

    entries: list[Entry] = []
    for path in iter_files(root):
        rel = PurePosixPath(path.name if path == root else path.relative_to(root).as_posix())
        if path.suffix.lower() == ".zip":
            entries.extend(archive_entries(path, rel, options))
        else:
            entries.append(_disk_entry(path, rel, options))
    return entries


def _disk_entry(path: Path, rel: PurePosixPath, options: ParseOptions) -> Entry:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Entry(rel, 0, bytes, InvalidInput(rel, f"cannot read: {exc.strerror or exc}"))
    # Checked before reading: a 2 GB file must cost a stat, not 2 GB of memory.
    if size > options.max_file_bytes:
        return Entry(rel, size, bytes, _too_large(rel, size, options.max_file_bytes))

    def read() -> bytes:
        try:
            with path.open("rb") as handle:
                data = handle.read(options.max_file_bytes + 1)
        except OSError as exc:
            raise InvalidInput(rel, f"cannot read: {exc.strerror or exc}") from None
        if len(data) > options.max_file_bytes:  # grew since the stat
            raise _too_large(rel, len(data), options.max_file_bytes)
        return data

    return Entry(rel, size, read)


def _too_large(rel: PurePosixPath, size: int, limit: int) -> TooLarge:
    return TooLarge(rel, f"file of {size} bytes exceeds the {limit}-byte limit per file", limit)


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to use, or ``None``."""
    if "\x00" in name:
        return "NUL in member name"
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return f"absolute member path {name!r}"
    if ".." in normalised.split("/"):
        return f"member path {name!r} escapes the archive"
    return None


def archive_entries(path: Path, rel: PurePosixPath, options: ParseOptions) -> list[Entry]:
    """The members of a .zip, or a single entry carrying why the whole archive is rejected."""
    try:
        return list(_archive_entries(path, rel, options))
    except IngestError as exc:
        return [Entry(rel, 0, bytes, exc)]


def _archive_entries(path: Path, rel: PurePosixPath, options: ParseOptions) -> Iterator[Entry]:
    try:
        size = path.stat().st_size
        if size > options.max_archive_bytes:
            raise TooLarge(rel, f"archive of {size} bytes exceeds the {options.max_archive_bytes}-byte limit")
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise InvalidInput(rel, f"not a readable zip archive ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > options.max_archive_members:
            raise TooLarge(rel, f"{len(infos)} members exceed the limit of {options.max_archive_members}")
        total = 0
        for info in infos:
            reason = _unsafe_name(info.filename)
            if reason is not None:
                raise InvalidInput(rel, f"unsafe archive: {reason}")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise InvalidInput(rel, f"unsafe archive: member {info.filename!r} is a symlink")
            total += info.file_size
            if total > options.max_archive_bytes:
                raise TooLarge(rel, f"expands to more than {options.max_archive_bytes} bytes (zip bomb?)")
            if info.compress_size and info.file_size > options.max_compression_ratio * max(
                info.compress_size, 1024
            ):
                raise TooLarge(
                    rel,
                    f"member {info.filename!r} expands {info.file_size // info.compress_size}x "
                    f"(limit {options.max_compression_ratio}x; zip bomb?)",
                )
    # Reopened per read: entries outlive this function and are read one at a time, possibly in a thread.
    for info in sorted(infos, key=lambda i: i.filename):
        name = PurePosixPath(info.filename.replace("\\", "/"))
        if info.is_dir() or any(part.startswith(".") or part == "__MACOSX" for part in name.parts):
            continue
        member_rel = rel / name
        if info.file_size > options.max_file_bytes:
            yield Entry(
                member_rel,
                info.file_size,
                bytes,
                _too_large(member_rel, info.file_size, options.max_file_bytes),
            )
            continue
        if name.suffix.lower() == ".zip":
            yield Entry(
                member_rel,
                info.file_size,
                bytes,
                InvalidInput(member_rel, "nested archives are not unpacked"),
            )
            continue
        yield Entry(member_rel, info.file_size, _member_reader(path, info.filename, member_rel, options))


def _member_reader(path: Path, member: str, rel: PurePosixPath, options: ParseOptions) -> Callable[[], bytes]:
    def read() -> bytes:
        out = bytearray()
        try:
            with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
                while block := handle.read(_READ_BLOCK):
                    out += block
                    # The declared size was checked; this catches a header that lies about it.
                    if len(out) > options.max_file_bytes:
                        raise _too_large(rel, len(out), options.max_file_bytes)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
            raise InvalidInput(rel, f"cannot extract ({exc})") from None
        return bytes(out)

    return read
