"""``python -m services.policy``: the policy service on its own port."""

from services.common.server import main_for
from services.policy.config import PolicyConfig
from services.policy.server import build

config = PolicyConfig.from_env()
main_for("policy", lambda: build(config), config.server)
