"""``python -m services.inference``: the inference service on its own port."""

from services.common.server import main_for
from services.inference.config import InferenceConfig
from services.inference.server import build

config = InferenceConfig.from_env()
main_for("inference", lambda: build(config), config.server)
