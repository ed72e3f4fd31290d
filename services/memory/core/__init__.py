"""The memory service's domain core: creator content, hybrid retrieval and per-fan memory over Postgres.

Nothing here imports grpc; the servicer converts protos to these types and awaits :class:`MemoryStore`.
"""

from services.memory.core.errors import Conflict, InvalidArgument, MemoryStoreError, NotFound
from services.memory.core.store import MIGRATIONS_DIR, MemoryStore, open_store
from services.memory.core.types import (
    EMBEDDING_DIM,
    FanMemory,
    NewChunk,
    PersonaProfile,
    SearchFilters,
    SearchHit,
    SearchResult,
    Turn,
    WriteResult,
)

__all__ = [
    "EMBEDDING_DIM",
    "MIGRATIONS_DIR",
    "Conflict",
    "FanMemory",
    "InvalidArgument",
    "MemoryStore",
    "MemoryStoreError",
    "NewChunk",
    "NotFound",
    "PersonaProfile",
    "SearchFilters",
    "SearchHit",
    "SearchResult",
    "Turn",
    "WriteResult",
    "open_store",
]
