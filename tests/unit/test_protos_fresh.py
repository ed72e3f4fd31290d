"""The checked-in generated code must match protos/ exactly."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--out", str(tmp_path)], check=True, env=env
    )
    fresh = tmp_path / "avatar" / "v1"
    checked_in = REPO / "avatar" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert names == sorted(
        p.name for p in checked_in.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}
    )
    _, mismatch, errors = filecmp.cmpfiles(fresh, checked_in, names, shallow=False)
    assert mismatch == [] and errors == [], (
        f"stale generated code, run scripts/gen_protos.py: {mismatch + errors}"
    )
