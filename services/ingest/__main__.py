"""``python -m services.ingest``: the ingest service on its own port."""

from services.common.server import main_for
from services.ingest.config import IngestConfig
from services.ingest.server import build

config = IngestConfig.from_env()
main_for("ingest", lambda: build(config), config.server)
