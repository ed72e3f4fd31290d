"""Ingest core: pure parsing, normalisation, chunking and deduplication (no gRPC, no database)."""

from services.ingest.core.chunker import (
    ChunkingParams,
    Deduplicator,
    TokenCounter,
    approx_token_count,
    chunk_document,
    chunk_documents,
    split_sentences,
)
from services.ingest.core.errors import IngestError, InvalidInput, UnsupportedFormat
from services.ingest.core.normalize import content_hash, normalize_text
from services.ingest.core.parsers import Format, detect_format, iter_files, parse_bytes, parse_path
from services.ingest.core.types import KINDS, Chunk, Document, SourceMeta

__all__ = [
    "KINDS",
    "Chunk",
    "ChunkingParams",
    "Deduplicator",
    "Document",
    "Format",
    "IngestError",
    "InvalidInput",
    "SourceMeta",
    "TokenCounter",
    "UnsupportedFormat",
    "approx_token_count",
    "chunk_document",
    "chunk_documents",
    "content_hash",
    "detect_format",
    "iter_files",
    "normalize_text",
    "parse_bytes",
    "parse_path",
    "split_sentences",
]
