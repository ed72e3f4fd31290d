"""Which failures pause an ingest job (and resume it) rather than fail it, and how long it waits."""

from __future__ import annotations

import grpc
import psycopg
import psycopg_pool
import pytest

from services.ingest.server import MAX_RETRY_SECONDS, RETRY_SECONDS, is_transient, retry_delay

pytestmark = pytest.mark.timeout(30)


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x", debug_error_string="x"
    )


def test_outages_pause_a_job_and_refusals_fail_it() -> None:
    for code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ):
        assert is_transient(_rpc_error(code)), code
    assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_transient(psycopg_pool.PoolTimeout("couldn't get a connection after 2.00 sec"))
    for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL):
        assert not is_transient(_rpc_error(code)), code
    assert not is_transient(psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_transient(ValueError("bug"))


def test_retry_delay_doubles_up_to_the_cap() -> None:
    delays = [retry_delay(n) for n in range(1, 10)]
    assert delays[0] == RETRY_SECONDS and delays[1] == 2 * RETRY_SECONDS
    assert delays == sorted(delays) and delays[-1] == MAX_RETRY_SECONDS
    assert retry_delay(10_000) == MAX_RETRY_SECONDS
