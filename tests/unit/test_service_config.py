"""Service configuration read from the environment: numeric bounds fail fast with a clear message."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError
from services.policy.config import PolicyConfig

_BASE = {"AVATAR_DATABASE_URL": "postgresql://avatar@127.0.0.1/avatar"}


@pytest.mark.parametrize("value", ["0", "250", "1000"])
def test_output_controls_max_age_accepts_zero_to_one_second(value: str) -> None:
    cfg = PolicyConfig.from_env({**_BASE, "AVATAR_POLICY_OUTPUT_CONTROLS_MAX_AGE_MS": value})
    assert cfg.output_controls_max_age_ms == float(value)


@pytest.mark.parametrize(("value", "message"), [("-1", ">= 0"), ("1000.5", "<= 1000"), ("soon", "a number")])
def test_output_controls_max_age_outside_a_second_is_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"AVATAR_POLICY_OUTPUT_CONTROLS_MAX_AGE_MS must be {message}"):
        PolicyConfig.from_env({**_BASE, "AVATAR_POLICY_OUTPUT_CONTROLS_MAX_AGE_MS": value})


def test_output_controls_max_age_defaults_to_a_quarter_second() -> None:
    assert PolicyConfig.from_env(_BASE).output_controls_max_age_ms == 250.0
