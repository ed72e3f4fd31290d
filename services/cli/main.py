"""The ``avatar`` command: up, ingest, chat, demo, models."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import grpc

from avatar.v1 import ingest_service_pb2 as ingest_pb
from avatar.v1 import ingest_service_pb2_grpc as ingest_grpc
from avatar.v1 import types_pb2
from services.cli.channels import cli_channel
from services.cli.conversation import chat_loop
from services.cli.stack import SERVICES, Stack, StackSettings, free_port
from services.common import config
from services.ingest.progress import render_progress
from services.loadtest.cli import add_arguments as add_load_arguments
from services.loadtest.cli import run as run_load_command


def ensure_models(model_dir: Path) -> None:
    """Build the tiny random-weight decoder and the MiniLM embedder if they are not there yet."""
    from services.inference.models import ensure_models as _ensure

    started = time.monotonic()
    built = _ensure(model_dir)
    if built:
        print(
            f"built models {', '.join(built)} in {model_dir} ({time.monotonic() - started:.1f}s)",
            file=sys.stderr,
        )


def _settings(args: argparse.Namespace, *, auto_ports: bool) -> StackSettings:
    ports = {name: free_port() for name in SERVICES} if auto_ports else dict(config.PORTS)
    return StackSettings(
        data_dir=Path(args.data_dir),
        model_dir=Path(args.model_dir),
        database_url=config.database_url(),
        redis_url=config.redis_url(),
        ports=ports,
        quiet=not getattr(args, "logs", True),
    )


def cmd_up(args: argparse.Namespace) -> int:
    ensure_models(Path(args.model_dir))
    with Stack(_settings(args, auto_ports=False)):
        print(
            f"suite is up; gateway on 127.0.0.1:{config.PORTS['gateway']}. Ctrl-C to stop.", file=sys.stderr
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping...", file=sys.stderr)
    return 0


def ingest_path(target: str, creator_id: str, path: Path, *, progress: bool = False) -> ingest_pb.Job:
    """Ingest a file or directory through the ingest service and print per-file results.

    With ``progress`` the job starts asynchronously and a progress bar follows it (WatchJob).
    """
    with cli_channel(target) as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        request = ingest_pb.IngestPathRequest(
            creator_id=creator_id, path=str(path.resolve()), async_start=progress
        )
        job = stub.IngestPath(request, timeout=3600).job
        if progress:
            watched = render_progress(
                stub.WatchJob(ingest_pb.WatchJobRequest(job_id=job.job_id), timeout=3600)
            )
            job = watched if watched is not None else job
    for f in job.files:
        status = ingest_pb.FileStatus.Name(f.status).removeprefix("FILE_STATUS_").lower()
        detail = (
            f"error: {f.error}"
            if f.error
            else f"{f.documents} docs, {f.chunks_inserted} new chunks, {f.chunks_unchanged} unchanged"
        )
        platform = types_pb2.Platform.Name(f.platform).removeprefix("PLATFORM_").lower()
        print(f"  {f.path} [{platform}] {status}: {detail}")
    print(
        f"ingested for '{creator_id}': {job.files_done}/{job.files_total} files, "
        f"{job.chunks_inserted} new chunks, {job.chunks_unchanged} unchanged"
    )
    return job


def cmd_ingest(args: argparse.Namespace) -> int:
    ingest_path(
        args.target or config.service_target("ingest"),
        args.creator,
        Path(args.path),
        progress=not args.no_progress,
    )
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    chat_loop(args.target or config.service_target("gateway"), args.creator, args.fan)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from services.cli.demo import run_demo

    ensure_models(Path(args.model_dir))
    with Stack(_settings(args, auto_ports=True)) as stack:
        run_demo(stack)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an API key in the database named by AVATAR_DATABASE_URL and print it once."""
    import asyncio

    from services.common.auth import KeyStore, Role

    url = config.database_url()
    if url is None:
        print("error: set AVATAR_DATABASE_URL to the suite's Postgres", file=sys.stderr)
        return 2
    key = asyncio.run(KeyStore(url).create(Role(args.role), args.creator, args.label))
    print(key)
    print("store it now: only its hash is kept", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    ensure_models(Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar", description="Creator Avatar: run and talk to the suite.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dirs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", default=str(config.data_dir()), help="embedded Postgres/Redis data")
        p.add_argument("--model-dir", default=str(config.model_dir()), help="models (built if missing)")
        return p

    up = with_dirs(sub.add_parser("up", help="start embedded Postgres+Redis and all five services"))
    up.set_defaults(func=cmd_up)
    demo = with_dirs(
        sub.add_parser("demo", help="up + ingest the sample creator + a scripted fan conversation")
    )
    demo.add_argument("--logs", action="store_true", help="show the services' logs (hidden by default)")
    demo.set_defaults(func=cmd_demo)
    ing = sub.add_parser("ingest", help="ingest a file or directory for a creator")
    ing.add_argument("path")
    ing.add_argument("--creator", required=True)
    ing.add_argument("--target", help="ingest service host:port")
    ing.add_argument("--no-progress", action="store_true", help="wait for the result without a progress bar")
    ing.set_defaults(func=cmd_ingest)
    chat = sub.add_parser("chat", help="chat with a creator's avatar (streaming)")
    chat.add_argument("--creator", required=True)
    chat.add_argument("--fan", default="fan-cli")
    chat.add_argument("--target", help="gateway host:port")
    chat.set_defaults(func=cmd_chat)
    load = sub.add_parser("load", help="simulate concurrent fans against a gateway and report latencies")
    add_load_arguments(load)
    load.set_defaults(func=run_load_command)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--role", required=True, choices=["fan-app", "creator-admin", "operator"])
    create.add_argument("--creator", help="the creator a fan-app or creator-admin key belongs to")
    create.add_argument("--label", default="", help="a note for yourself")
    create.set_defaults(func=cmd_keys_create)
    models = sub.add_parser("models", help="build the local models (tiny decoder + MiniLM embedder)")
    models.add_argument("--out", default=str(config.model_dir()))
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except grpc.RpcError as err:
        print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
