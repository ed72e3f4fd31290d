"""The suite over mutual TLS with API keys: who may call what, and for which creator."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import ingest_service_pb2 as ing_pb
from avatar.v1 import ingest_service_pb2_grpc as ing_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from services.common.auth import KeyStore, Role, allowed_roles, parse_key
from services.common.clients import open_channel
from services.common.config import ClientSecurity, ServerConfig
from tests.e2e.certs import CertFiles, make_certs
from tests.e2e.conftest import SAMPLES, Suite, start_suite, stop_suite

pytestmark = pytest.mark.timeout(300)
TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def service_env(certs: CertFiles) -> Iterator[None]:
    """What the services read for their own outgoing calls: mTLS material and the service token."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AVATAR_TLS_CA", str(certs.ca))
    mp.setenv("AVATAR_TLS_CLIENT_CERT", str(certs.client_cert))
    mp.setenv("AVATAR_TLS_CLIENT_KEY", str(certs.client_key))
    mp.setenv("AVATAR_SERVICE_TOKEN", TOKEN)
    yield
    mp.undo()


@pytest.fixture(scope="module")
async def secure_suite(
    model_dir: Path, suite_db: str, redis_url: str, certs: CertFiles, service_env: None
) -> AsyncIterator[Suite]:
    def config(name: str) -> ServerConfig:
        return ServerConfig(
            host="127.0.0.1",
            port=0,
            grace_seconds=1.0,
            otlp_endpoint=None,
            log_level="INFO",
            tls_cert=str(certs.server_cert),
            tls_key=str(certs.server_key),
            tls_client_ca=str(certs.ca),
            auth_required=True,
            service_token=TOKEN,
            database_url=suite_db,
            max_message_bytes=512 * 1024,
        )

    suite = await start_suite(model_dir, suite_db, redis_url, config)
    try:
        yield suite
    finally:
        await stop_suite(suite)


@pytest.fixture(scope="module")
async def keys(suite_db: str) -> dict[str, str]:
    store = KeyStore(suite_db)
    creator = f"maya-{uuid.uuid4().hex[:6]}"
    return {
        "creator": creator,
        "fan": await store.create(Role.FAN_APP, creator, "fan app"),
        "admin": await store.create(Role.CREATOR_ADMIN, creator, "maya console"),
        "other_admin": await store.create(Role.CREATOR_ADMIN, "someone-else"),
        "operator": await store.create(Role.OPERATOR, None, "ops"),
    }


def _channel(
    certs: CertFiles, target: str, token: str | None, *, client_cert: bool = True
) -> grpc.aio.Channel:
    security = ClientSecurity(
        ca=str(certs.ca),
        cert=str(certs.client_cert) if client_cert else None,
        key=str(certs.client_key) if client_cert else None,
        token=token,
    )
    return open_channel(target, security)


def test_rules_close_internal_rpcs_to_tenants() -> None:
    assert allowed_roles("/grpc.health.v1.Health/Check") is None
    assert Role.FAN_APP in (allowed_roles("/avatar.v1.ConversationService/Converse") or set())
    assert Role.FAN_APP not in (allowed_roles("/avatar.v1.PolicyService/UpdateControls") or set())
    assert Role.CREATOR_ADMIN not in (allowed_roles("/avatar.v1.PolicyService/CheckInput") or set())
    assert allowed_roles("/avatar.v1.NewService/Anything") == {Role.SERVICE, Role.OPERATOR}
    # The creator corrects the persona profile; only ingest writes what it computed.
    assert Role.CREATOR_ADMIN in (allowed_roles("/avatar.v1.MemoryService/UpdatePersonaProfile") or set())
    assert Role.CREATOR_ADMIN not in (allowed_roles("/avatar.v1.MemoryService/PutPersonaProfile") or set())
    assert parse_key("av_abc_secret") == ("abc", "secret") and parse_key("Bearer x") is None


async def test_keys_are_stored_hashed_and_revocable(suite_db: str) -> None:
    store = KeyStore(suite_db)
    key = await store.create(Role.FAN_APP, "c1")
    principal = await store.lookup(key)
    assert principal is not None and principal.role is Role.FAN_APP and principal.creator_id == "c1"
    assert await store.lookup(key[:-1] + ("x" if key[-1] != "x" else "y")) is None
    assert await store.revoke(principal.key_id)
    assert await store.lookup(key) is None
    with pytest.raises(ValueError):
        await store.create(Role.OPERATOR, "c1")


async def test_transport_needs_tls_and_a_client_certificate(secure_suite: Suite, certs: CertFiles) -> None:
    target = secure_suite.target("gateway")
    async with grpc.aio.insecure_channel(target) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    async with _channel(certs, target, None, client_cert=False) as no_cert:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health_pb2_grpc.HealthStub(no_cert).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    async with _channel(certs, target, None) as ok:  # health needs no key
        reply = await health_pb2_grpc.HealthStub(ok).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_fan_app_key_talks_to_its_creator_only(
    secure_suite: Suite, certs: CertFiles, keys: dict[str, str]
) -> None:
    creator = keys["creator"]
    async with _channel(certs, secure_suite.target("ingest"), keys["admin"]) as ch:
        job = await ing_grpc.IngestServiceStub(ch).IngestPath(
            ing_pb.IngestPathRequest(creator_id=creator, path=str(SAMPLES / "coach-rio")), timeout=120
        )
        assert job.job.chunks_inserted > 0
    async with _channel(certs, secure_suite.target("gateway"), keys["fan"]) as ch:
        stub = conv_grpc.ConversationServiceStub(ch)
        events = [
            e
            async for e in stub.Converse(
                conv_pb.ConverseRequest(
                    creator_id=creator, fan_id="f1", message="How do I swing a kettlebell?"
                ),
                timeout=120,
            )
        ]
        # The whole path ran: gateway -> policy, memory, inference over mTLS with the service token.
        assert events[-1].end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED and events[-1].end.citations
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Converse(
                conv_pb.ConverseRequest(creator_id="someone-else", fan_id="f1", message="hi"), timeout=10
            ):
                pass
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with _channel(certs, secure_suite.target("policy"), keys["fan"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pol_grpc.PolicyServiceStub(ch).GetControls(
                pol_pb.GetControlsRequest(creator_id=creator), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_missing_or_wrong_credentials(
    secure_suite: Suite, certs: CertFiles, keys: dict[str, str]
) -> None:
    for token in (None, "av_nope_nope", "not-a-key"):
        async with _channel(certs, secure_suite.target("gateway"), token) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in conv_grpc.ConversationServiceStub(ch).Converse(
                    conv_pb.ConverseRequest(creator_id=keys["creator"], fan_id="f", message="hi"), timeout=5
                ):
                    pass
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_creator_admin_and_operator_scopes(
    secure_suite: Suite, certs: CertFiles, keys: dict[str, str]
) -> None:
    creator = keys["creator"]
    controls = pol_pb.Controls(creator_id=creator, disclosure_text="AI avatar of Rio.")
    async with _channel(certs, secure_suite.target("policy"), keys["admin"]) as ch:
        stub = pol_grpc.PolicyServiceStub(ch)
        stored = await stub.UpdateControls(pol_pb.UpdateControlsRequest(controls=controls), timeout=5)
        assert stored.controls.disclosure_text == "AI avatar of Rio."
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CheckInput(
                pol_pb.CheckInputRequest(creator_id=creator, fan_id="f", message="x"), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with _channel(certs, secure_suite.target("policy"), keys["other_admin"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pol_grpc.PolicyServiceStub(ch).UpdateControls(
                pol_pb.UpdateControlsRequest(controls=controls), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with _channel(certs, secure_suite.target("ingest"), keys["other_admin"]) as ch:
        upload = [
            ing_pb.UploadRequest(header=ing_pb.UploadHeader(creator_id=creator, filename="a.txt")),
            ing_pb.UploadRequest(data=b"hello there"),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ing_grpc.IngestServiceStub(ch).Upload(iter(upload), timeout=10)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with _channel(certs, secure_suite.target("memory"), keys["other_admin"]) as ch:
        correction = mem_pb.UpdatePersonaProfileRequest(creator_id=creator, profile=mem_pb.PersonaProfile())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await mem_grpc.MemoryServiceStub(ch).UpdatePersonaProfile(correction, timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with _channel(certs, secure_suite.target("policy"), keys["operator"]) as ch:
        reply = await pol_grpc.PolicyServiceStub(ch).GetControls(
            pol_pb.GetControlsRequest(creator_id=creator), timeout=5
        )
        assert reply.controls.version >= 1


async def test_internal_rpcs_need_the_service_token_and_sizes_are_limited(
    secure_suite: Suite, certs: CertFiles, keys: dict[str, str]
) -> None:
    target = secure_suite.target("inference")
    async with _channel(certs, target, keys["fan"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await inf_grpc.InferenceServiceStub(ch).Embed(inf_pb.EmbedRequest(texts=["x"]), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with _channel(certs, target, TOKEN) as ch:
        stub = inf_grpc.InferenceServiceStub(ch)
        reply = await stub.Embed(inf_pb.EmbedRequest(texts=["hello"]), timeout=10)
        assert reply.dim == 384
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Embed(inf_pb.EmbedRequest(texts=["x" * 600_000]), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_config_rejects_half_configured_security() -> None:
    from services.common.config import ConfigError

    with pytest.raises(ConfigError, match="AVATAR_TLS_KEY"):
        ServerConfig.from_env("gateway", {"AVATAR_TLS_CERT": "/x.pem"})
    with pytest.raises(ConfigError, match="AVATAR_SERVICE_TOKEN"):
        ServerConfig.from_env("gateway", {"AVATAR_AUTH": "required"})
    cfg = ServerConfig.from_env("gateway", {"AVATAR_AUTH": "required", "AVATAR_SERVICE_TOKEN": "t"})
    assert dataclasses.replace(cfg).auth_required is True


def test_every_rpc_of_the_api_has_a_deliberate_rule() -> None:
    """A new RPC must be classified here: tenant-facing or internal."""
    from avatar.v1 import (
        conversation_service_pb2,
        inference_service_pb2,
        ingest_service_pb2,
        memory_service_pb2,
        policy_service_pb2,
    )

    tenant_facing = {
        "ConversationService": {"Converse", "GetHistory", "GetPendingReplies"},
        "IngestService": {
            "Upload",
            "IngestPath",
            "GetJob",
            "WatchJob",
            "DeleteSource",
            "DeleteCreator",
        },
        "PolicyService": {
            "GetControls",
            "UpdateControls",
            "ListDrafts",
            "ApproveDraft",
            "RejectDraft",
            "ListVoiceExamples",
            "ListAudit",
            "DeleteAudit",
        },
        "MemoryService": {
            "DeleteSource",
            "DeleteCreator",
            "GetCreatorStats",
            "ListTurns",
            "ListConversations",
            "ForgetFan",
            "GetPersonaProfile",
            "UpdatePersonaProfile",
        },
        "InferenceService": set(),
    }
    for module in (
        conversation_service_pb2,
        ingest_service_pb2,
        policy_service_pb2,
        memory_service_pb2,
        inference_service_pb2,
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                roles = allowed_roles(f"/{service.full_name}/{method.name}") or set()
                tenant = method.name in tenant_facing[service.name]
                assert (Role.CREATOR_ADMIN in roles or Role.FAN_APP in roles) == tenant, (
                    service.name,
                    method.name,
                )
