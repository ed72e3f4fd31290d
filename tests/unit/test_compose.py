"""compose.yaml is validated offline by Debian's docker-compose (no engine needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SUITE = {"gateway", "ingest", "memory", "policy", "inference"}


def _config(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: `make tools` installs Debian's package")
    return subprocess.run([exe, "-f", str(path), "config"], capture_output=True, text=True, check=False)


def test_compose_describes_the_suite() -> None:
    result = _config(REPO / "compose.yaml")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert SUITE | {"postgres", "redis"} <= set(services)
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["redis"]["image"].startswith("redis:")
    for name in SUITE:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        env = services[name]["environment"]
        assert env["AVATAR_DATABASE_URL"].startswith("postgresql://")
        assert env["AVATAR_REDIS_URL"].startswith("redis://")
    assert services["inference"]["depends_on"]["models"]["condition"] == "service_completed_successfully"
    # The gateway resolves every inference container (docker compose up --scale inference=N) and
    # routes each creator to one of them.
    assert services["gateway"]["environment"]["AVATAR_INFERENCE_DNS"] == "inference:50055"
    assert "AVATAR_INFERENCE_DNS" not in services["ingest"]["environment"]


def test_validator_rejects_unknown_keys(tmp_path: Path) -> None:
    # Proves the check above is a real schema validation and not a YAML parse.
    text = (REPO / "compose.yaml").read_text().replace("  redis:\n", "  redis:\n    bogus_key: 1\n", 1)
    bad = tmp_path / "compose.yaml"
    bad.write_text(text)
    result = _config(bad)
    assert result.returncode != 0
    assert "bogus_key" in result.stderr
