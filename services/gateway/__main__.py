"""``python -m services.gateway``: the fan-facing gateway on its own port."""

from services.common.server import main_for
from services.gateway.config import GatewayConfig
from services.gateway.server import build

config = GatewayConfig.from_env()
main_for("gateway", lambda: build(config), config.server)
