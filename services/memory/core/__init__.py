"""The memory service's domain core: creators, sources, chunks and fan turns over Postgres+pgvector.

Nothing here imports grpc; the servicer converts protos to these types and awaits :class:`MemoryStore`.
"""

from services.memory.core.errors import InvalidArgument, MemoryStoreError, NotFound
from services.memory.core.store import MIGRATIONS_DIR, MemoryStore, open_store
from services.memory.core.types import EMBEDDING_DIM, NewChunk, SearchHit, Turn, WriteResult

__all__ = [
    "EMBEDDING_DIM",
    "MIGRATIONS_DIR",
    "InvalidArgument",
    "MemoryStore",
    "MemoryStoreError",
    "NewChunk",
    "NotFound",
    "SearchHit",
    "Turn",
    "WriteResult",
    "open_store",
]
