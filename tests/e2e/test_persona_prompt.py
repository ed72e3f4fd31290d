"""The creator's persona profile and their edited replies reach the prompt, through real turns.

What the model was told is observable in the audit record of each turn (system prompt and the
persona / voice-example versions it was rendered from), so these tests read it there: they fail if
the profile, a correction or an approved edit does not end up in the system message.
"""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import ingest_service_pb2 as ing_pb
from avatar.v1 import ingest_service_pb2_grpc as ing_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from services.common.config import ServerConfig
from services.common.server import start_server
from services.gateway import server as gateway_server
from services.gateway.config import GatewayConfig
from tests.e2e.conftest import Suite

pytestmark = pytest.mark.timeout(300)

POSTS = [
    {"id": "p1", "text": "Happy baking friends! I own one Dutch oven I call the Tank. #sourdough"},
    {"id": "p2", "text": "Rye day today. Happy baking friends, feed your starter twice a day. #sourdough"},
    {"id": "p3", "text": "Doughlores is my sourdough starter and she is five years old."},
]


async def _upload_posts(suite: Suite, creator: str) -> None:
    data = "\n".join(json.dumps(p) for p in POSTS).encode()
    async with suite.channel("ingest") as ch:
        reply = await ing_grpc.IngestServiceStub(ch).Upload(
            iter(
                [
                    ing_pb.UploadRequest(
                        header=ing_pb.UploadHeader(creator_id=creator, filename="posts.jsonl")
                    ),
                    ing_pb.UploadRequest(data=data),
                ]
            ),
            timeout=120,
        )
    assert reply.job.state == ing_pb.JOB_STATE_SUCCEEDED


async def _turn(target: str, creator: str, fan: str, message: str) -> conv_pb.ReplyEnd:
    async with grpc.aio.insecure_channel(target) as ch:
        events = [
            e
            async for e in conv_grpc.ConversationServiceStub(ch).Converse(
                conv_pb.ConverseRequest(creator_id=creator, fan_id=fan, message=message), timeout=120
            )
        ]
    return events[-1].end


async def _audit(suite: Suite, creator: str) -> list[pol_pb.TurnRecord]:
    async with suite.channel("policy") as ch:
        reply = await pol_grpc.PolicyServiceStub(ch).ListAudit(
            pol_pb.ListAuditRequest(creator_id=creator), timeout=10
        )
    return list(reply.records)  # newest first


async def test_the_persona_profile_and_its_corrections_reach_the_system_prompt(suite: Suite) -> None:
    creator = f"voice-{uuid.uuid4().hex[:8]}"
    await _upload_posts(suite, creator)
    async with suite.channel("memory") as ch:
        memory = mem_grpc.MemoryServiceStub(ch)
        profile = (
            await memory.GetPersonaProfile(mem_pb.GetPersonaProfileRequest(creator_id=creator), timeout=10)
        ).profile
    assert "happy baking friends" in [t.term for t in profile.signature_phrases]
    assert "I own one Dutch oven I call the Tank." in [f.text for f in profile.facts]

    gateway = suite.target("gateway")
    first = await _turn(gateway, creator, "fan-a", "What do you bake in?")
    assert first.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
    [record] = await _audit(suite, creator)
    system = record.system_prompt
    assert record.persona_version == profile.version
    assert f"You are the AI avatar of the creator '{creator}'." in system
    assert '"happy baking friends"' in system, "signature phrases are style guidance"
    assert "- I own one Dutch oven I call the Tank." in system, "stated facts are in the persona"
    assert "#sourdough" in system and "Languages they write in: en 100%" in system
    assert "What do you bake in?" not in system, "nothing per turn in the shared prefix"

    # Another fan gets the byte-identical system message, so its KV prefix comes from the cache.
    second = await _turn(gateway, creator, "fan-b", "Is Doughlores old?")
    newest = (await _audit(suite, creator))[0]
    assert newest.fan_id == "fan-b" and newest.system_prompt == system
    assert second.usage.cached_prompt_tokens > 0

    # The creator corrects their facts; re-ingesting does not undo it; a gateway that reads the
    # profile (a fresh one: this one caches it for a few seconds) renders the correction.
    async with suite.channel("memory") as ch:
        corrected = (
            await mem_grpc.MemoryServiceStub(ch).UpdatePersonaProfile(
                mem_pb.UpdatePersonaProfileRequest(
                    creator_id=creator,
                    profile=mem_pb.PersonaProfile(
                        facts=[
                            mem_pb.StatedFact(
                                kind=mem_pb.STATED_FACT_KIND_NEVER, text="I never use commercial yeast."
                            )
                        ]
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["facts"]),
                    expected_version=profile.version,
                ),
                timeout=10,
            )
        ).profile
    await _upload_posts(suite, creator)
    fresh = await start_server(
        await gateway_server.build(
            GatewayConfig(
                ServerConfig(
                    host="127.0.0.1", port=0, grace_seconds=1.0, otlp_endpoint=None, log_level="INFO"
                ),
                suite.target("policy"),
                suite.target("memory"),
                suite.target("inference"),
                max_tokens=8,
                temperature=0.0,
                top_k=3,
                min_score=0.2,
                max_message_chars=2000,
                redis_url=None,
            )
        )
    )
    try:
        await _turn(fresh.target, creator, "fan-c", "Commercial yeast?")
    finally:
        await fresh.stop(1.0)
    latest = (await _audit(suite, creator))[0]
    assert latest.persona_version == corrected.version > profile.version
    assert "- I never use commercial yeast." in latest.system_prompt
    assert "the Tank" not in latest.system_prompt, "the corrected facts replace the computed ones"
    assert '"happy baking friends"' in latest.system_prompt, "uncorrected fields stay as computed"


async def test_an_approved_edit_is_an_example_in_the_next_turns_prompt(suite: Suite) -> None:
    creator = f"edits-{uuid.uuid4().hex[:8]}"
    await _upload_posts(suite, creator)
    async with suite.channel("policy") as ch:
        await pol_grpc.PolicyServiceStub(ch).UpdateControls(
            pol_pb.UpdateControlsRequest(
                controls=pol_pb.Controls(creator_id=creator, autonomy=pol_pb.AUTONOMY_APPROVAL)
            ),
            timeout=10,
        )
    gateway = suite.target("gateway")
    held = await _turn(gateway, creator, "fan-e", "How often do you feed Doughlores?")
    assert held.outcome == conv_pb.REPLY_OUTCOME_HELD
    [before] = await _audit(suite, creator)
    assert before.voice_examples_version == 0 and "wrote themselves" not in before.system_prompt

    edited = "Twice a day, friends: 1:2:2 in winter and 1:5:5 in the Tucson summer."
    async with suite.channel("policy") as ch:
        api = pol_grpc.PolicyServiceStub(ch)
        await api.ApproveDraft(
            pol_pb.ApproveDraftRequest(
                creator_id=creator, draft_id=held.pending_reply_id, edited_text=edited
            ),
            timeout=10,
        )
        listed = await api.ListVoiceExamples(pol_pb.ListVoiceExamplesRequest(creator_id=creator), timeout=10)
    assert [(e.draft_id, e.fan_message, e.reply) for e in listed.examples] == [
        (held.pending_reply_id, "How often do you feed Doughlores?", edited)
    ]
    assert listed.version > 0

    # The very next turn (another fan) is generated with the edit as an example of the voice.
    await _turn(gateway, creator, "fan-f", "Do you bake every day?")
    after = (await _audit(suite, creator))[0]
    assert after.fan_id == "fan-f" and after.voice_examples_version == listed.version
    assert f"Fan: How often do you feed Doughlores?\n{creator}: {edited}" in after.system_prompt
    assert after.system_prompt.startswith(before.system_prompt), "the examples extend the persona"
