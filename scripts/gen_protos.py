"""Generate Python code for protos/avatar/v1 into the repository root (or --out DIR).

Run from anywhere: ``python scripts/gen_protos.py``. Generating from the ``protos/`` root keeps
module paths equal to proto packages (``avatar.v1.types_pb2``), so no import rewriting is needed.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"


def generate(out: Path) -> None:
    """Run protoc with the Python, gRPC and mypy (.pyi) plugins into ``out``."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "avatar").rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    (out / "avatar" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for pkg in (out / "avatar", out / "avatar" / "v1"):
        (pkg / "__init__.py").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
