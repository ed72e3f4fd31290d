"""``python -m services.memory``: the memory service on its own port."""

from services.common.server import main_for
from services.memory.config import MemoryConfig
from services.memory.server import build

config = MemoryConfig.from_env()
main_for("memory", lambda: build(config), config.server)
