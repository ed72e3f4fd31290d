"""``python -m services.memory``: the memory service on its own port.

``python -m services.memory migrate`` only applies the memory migrations (to ``AVATAR_DATABASE_URL``)
and exits; the service also applies them at start, under an advisory lock.
"""

import asyncio
import sys

from services.common.db import apply_migrations
from services.common.server import main_for
from services.memory.config import MemoryConfig
from services.memory.core.store import COMPONENT, MIGRATIONS_DIR
from services.memory.server import build

config = MemoryConfig.from_env()
if sys.argv[1:] == ["migrate"]:
    applied = asyncio.run(apply_migrations(config.database_url, COMPONENT, MIGRATIONS_DIR))
    print(f"memory migrations applied: {applied or 'none (schema current)'}")
else:
    main_for("memory", lambda: build(config), config.server)
