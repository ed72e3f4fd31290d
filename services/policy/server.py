"""PolicyService servicer: proto <-> core types, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc

from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import policy_service_pb2 as pb
from avatar.v1 import policy_service_pb2_grpc as pb_grpc
from services.common.clients import RECONNECT_GRACE_SECONDS, open_channel, ready_within
from services.common.convert import ts_to_pb
from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.common.server import ServiceSpec
from services.policy.config import PolicyConfig
from services.policy.convert import (
    DRAFT_STATUS_BACK,
    controls_from_pb,
    controls_to_pb,
    decision_to_pb,
    draft_to_pb,
    fan_reply_to_pb,
    new_draft_from_pb,
    turn_record_from_pb,
    turn_record_to_pb,
)
from services.policy.core.checks import FanInfo, check_input, check_output_sentence, needs_disclosure
from services.policy.core.controls import Autonomy, Controls, InvalidControls
from services.policy.core.decision_log import DecisionWriter
from services.policy.core.decisions import Action, Stage
from services.policy.core.ratelimit import Bucket, RateLimited, RateLimiter, RateLimiterUnavailable
from services.policy.core.records import DraftAlreadyDecided, DraftNotFound
from services.policy.core.similarity import (
    NO_TOPIC_SCORES,
    InjectionMatch,
    InvalidEmbedding,
    TopicIndex,
    check_embedding,
)
from services.policy.core.store import PolicyStore, VersionConflict, open_store

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_TEXT = 8_000
MAX_DRAFT_TEXT = 20_000
MAX_EVIDENCE = 50
MAX_SYSTEM_PROMPT = 32_000
OUTPUT_CONTROLS_MAX_AGE_S = 0.25
"""How stale the controls behind a per-sentence ``CheckOutput`` may be.

``CheckInput`` reads them fresh on every turn; the sentences of the reply that follows are checked
against the version the store confirmed at most this long ago, which spares one database round trip
per sentence. A kill switch or a controls update saved through this replica applies to the next
sentence at once; one saved through another replica within this long.
"""


def _require(value: str, name: str, limit: int = MAX_TEXT) -> str:
    if not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > limit:
        raise InvalidArgument(f"{name} is longer than {limit} characters")
    return value


class PolicyServicer(pb_grpc.PolicyServiceServicer):
    """Thin adapter over the policy store, checks, rate limiter and topic index.

    Args:
        store: Controls, drafts and audit records.
        limiter: Rate limiter; ``None`` disables rate limits.
        topics: Embedding index of blocked-topic examples; ``None`` = keywords only.
        decisions: Writes the decision log in the background; ``None`` = one over ``store``
            (whoever owns the servicer closes it, see :func:`build`).
        output_controls_max_age_s: See :data:`OUTPUT_CONTROLS_MAX_AGE_S` (0 = read per sentence).
    """

    def __init__(
        self,
        store: PolicyStore,
        limiter: RateLimiter | None = None,
        topics: TopicIndex | None = None,
        decisions: DecisionWriter | None = None,
        output_controls_max_age_s: float = OUTPUT_CONTROLS_MAX_AGE_S,
    ) -> None:
        self._store = store
        self._output_max_age_s = output_controls_max_age_s
        self._limiter = limiter
        self._topics = topics
        self.decisions = decisions if decisions is not None else DecisionWriter(store)
        self._training: set[asyncio.Task[None]] = set()

    def train_soon(self, controls: Controls | None = None) -> None:
        """Embed the built-in banks and train ``controls``' topic classifiers in the background.

        Called at start and after every controls update, so the first fan message after a change
        does not wait for the training; a failure is logged and the first check retries it.
        """
        if self._topics is None:
            return
        task = asyncio.get_running_loop().create_task(self._train(self._topics, controls))
        self._training.add(task)
        task.add_done_callback(self._training.discard)

    async def _train(self, topics: TopicIndex, controls: Controls | None) -> None:
        try:
            await topics.warm(controls)
        except Exception:  # the embedder may not be up yet: the first check trains instead
            log.warning("policy classifiers not trained ahead of use", exc_info=True)

    async def close(self) -> None:
        """Stop any background training."""
        for task in list(self._training):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def GetControls(self, request: pb.GetControlsRequest, context: Ctx) -> pb.GetControlsResponse:
        controls = await self._store.get_controls(_require(request.creator_id, "creator_id"))
        return pb.GetControlsResponse(controls=controls_to_pb(controls))

    async def UpdateControls(
        self, request: pb.UpdateControlsRequest, context: Ctx
    ) -> pb.UpdateControlsResponse:
        expected = request.expected_version if request.HasField("expected_version") else None
        stored = await self._store.put_controls(controls_from_pb(request.controls), expected)
        self.train_soon(stored)
        return pb.UpdateControlsResponse(controls=controls_to_pb(stored))

    async def CheckInput(self, request: pb.CheckInputRequest, context: Ctx) -> pb.CheckInputResponse:
        creator_id = _require(request.creator_id, "creator_id")
        message = _require(request.message, "message")
        # The gateway sends the embedding it computed for retrieval; embed here only without one.
        embedding = check_embedding(request.embedding) if request.embedding else None
        # Read fresh on every turn: a kill switch must take effect on the very next message.
        controls = await self._store.get_controls(creator_id)
        if controls.autonomy is not Autonomy.PAUSED:
            await self._spend(controls, creator_id, request.fan_id)
        scores = NO_TOPIC_SCORES
        nearest: InjectionMatch | None = None
        if self._topics is not None and controls.autonomy is not Autonomy.PAUSED:
            # One embedding serves both: the topic examples and the built-in injection exemplars.
            if embedding is None:
                embedding = await self._topics.embed_message(message)
            scores = await self._topics.scores(controls, message, embedding)
            nearest = await self._topics.injections.nearest(embedding)
        fan = FanInfo(
            age=request.fan_age if request.HasField("fan_age") else None,
            age_verified=request.fan_age_verified,
        )
        decision = check_input(
            controls,
            message,
            fan=fan,
            now=datetime.now(UTC),
            topic_scores=scores.similarity,
            learned_topics=scores.learned,
            injection=nearest,
        )
        if decision.action is not Action.ALLOW:
            # Logged in the background: the fan does not wait for the insert.
            await self.decisions.put(creator_id, Stage.INPUT, decision, controls_version=controls.version)
        first = request.prior_turns == 0
        disclosure = (
            controls.render_disclosure(creator_id)
            if needs_disclosure(controls, first, None if first else request.minutes_since_last_turn)
            else ""
        )
        return pb.CheckInputResponse(
            decision=decision_to_pb(decision, controls.version),
            disclosure=disclosure,
            voice_examples_version=await self._store.voice_examples_version(creator_id),
        )

    async def CheckOutput(self, request: pb.CheckOutputRequest, context: Ctx) -> pb.CheckOutputResponse:
        creator_id = _require(request.creator_id, "creator_id")
        if len(request.evidence) > MAX_EVIDENCE:
            raise InvalidArgument(f"evidence has more than {MAX_EVIDENCE} entries")
        controls = await self._store.get_controls(creator_id, max_age_s=self._output_max_age_s)
        # The live path always sends the turn's evidence (possibly none), so grounding always runs.
        decision = check_output_sentence(
            controls, _require(request.sentence, "sentence"), list(request.evidence)
        )
        if decision.action is not Action.ALLOW:
            # Logged in the background: the sentence is released without waiting for the insert.
            await self.decisions.put(creator_id, Stage.OUTPUT, decision, controls_version=controls.version)
        return pb.CheckOutputResponse(decision=decision_to_pb(decision, controls.version))

    # -- approval queue -----------------------------------------------------------------------

    async def SubmitDraft(self, request: pb.SubmitDraftRequest, context: Ctx) -> pb.SubmitDraftResponse:
        d = request.draft
        for name in ("creator_id", "fan_id", "conversation_id", "fan_message"):
            _require(getattr(d, name), f"draft.{name}")
        if len(d.draft_text) > MAX_DRAFT_TEXT:
            raise InvalidArgument(f"draft.draft_text is longer than {MAX_DRAFT_TEXT} characters")
        draft_id = await self._store.submit_draft(new_draft_from_pb(d))
        return pb.SubmitDraftResponse(draft_id=draft_id)

    async def ListDrafts(self, request: pb.ListDraftsRequest, context: Ctx) -> pb.ListDraftsResponse:
        drafts = await self._store.list_drafts(
            _require(request.creator_id, "creator_id"),
            status=DRAFT_STATUS_BACK.get(request.status),
            fan_id=request.fan_id,
            edited_only=request.edited_only,
            limit=request.limit or 50,
        )
        return pb.ListDraftsResponse(drafts=[draft_to_pb(d) for d in drafts])

    async def ApproveDraft(self, request: pb.ApproveDraftRequest, context: Ctx) -> pb.ApproveDraftResponse:
        text = None
        if request.HasField("edited_text"):
            text = _require(request.edited_text.strip(), "edited_text", MAX_DRAFT_TEXT)
        draft = await self._store.decide_draft(
            _require(request.creator_id, "creator_id"),
            _require(request.draft_id, "draft_id"),
            approve=True,
            text=text,
            note=request.note,
        )
        return pb.ApproveDraftResponse(draft=draft_to_pb(draft))

    async def RejectDraft(self, request: pb.RejectDraftRequest, context: Ctx) -> pb.RejectDraftResponse:
        draft = await self._store.decide_draft(
            _require(request.creator_id, "creator_id"),
            _require(request.draft_id, "draft_id"),
            approve=False,
            note=request.note,
        )
        return pb.RejectDraftResponse(draft=draft_to_pb(draft))

    async def ListFanReplies(
        self, request: pb.ListFanRepliesRequest, context: Ctx
    ) -> pb.ListFanRepliesResponse:
        drafts = await self._store.list_drafts(
            _require(request.creator_id, "creator_id"),
            fan_id=_require(request.fan_id, "fan_id"),
            conversation_id=request.conversation_id,
            limit=200,
        )
        return pb.ListFanRepliesResponse(replies=[fan_reply_to_pb(d) for d in drafts])

    async def MarkDelivered(self, request: pb.MarkDeliveredRequest, context: Ctx) -> pb.MarkDeliveredResponse:
        ids = await self._store.mark_delivered(
            _require(request.creator_id, "creator_id"), list(request.draft_ids)
        )
        return pb.MarkDeliveredResponse(draft_ids=ids)

    async def ListVoiceExamples(
        self, request: pb.ListVoiceExamplesRequest, context: Ctx
    ) -> pb.ListVoiceExamplesResponse:
        if request.limit < 0:
            raise InvalidArgument("limit must not be negative")
        examples, version = await self._store.voice_examples(
            _require(request.creator_id, "creator_id"), request.limit or 3
        )
        return pb.ListVoiceExamplesResponse(
            examples=[
                pb.VoiceExample(
                    draft_id=e.draft_id,
                    fan_message=e.fan_message,
                    reply=e.reply,
                    approved_at=ts_to_pb(e.approved_at),
                )
                for e in examples
            ],
            version=version,
        )

    # -- audit --------------------------------------------------------------------------------

    async def RecordTurn(self, request: pb.RecordTurnRequest, context: Ctx) -> pb.RecordTurnResponse:
        r = request.record
        for name in ("creator_id", "fan_id", "conversation_id", "fan_message"):
            _require(getattr(r, name), f"record.{name}")
        if len(r.system_prompt) > MAX_SYSTEM_PROMPT:
            raise InvalidArgument(f"record.system_prompt is longer than {MAX_SYSTEM_PROMPT} characters")
        record = turn_record_from_pb(r)
        record_id = await self._store.record_turn(record)
        # Retention is enforced where records arrive, so a creator's log never outgrows it by more
        # than the purge interval even when the periodic purge is off.
        controls = await self._store.get_controls(record.creator_id)
        await self._store.purge_expired(record.creator_id, controls.audit_retention_days)
        return pb.RecordTurnResponse(record_id=record_id)

    async def ListAudit(self, request: pb.ListAuditRequest, context: Ctx) -> pb.ListAuditResponse:
        before = 0
        if request.page_token:
            try:
                before = int(request.page_token)
            except ValueError:
                raise InvalidArgument("page_token is not one this service issued") from None
        limit = request.limit or 50
        records = await self._store.list_audit(
            _require(request.creator_id, "creator_id"),
            fan_id=request.fan_id,
            conversation_id=request.conversation_id,
            before_id=before,
            limit=limit,
        )
        token = str(records[-1].record_id) if len(records) == min(max(limit, 1), 500) else ""
        return pb.ListAuditResponse(records=[turn_record_to_pb(r) for r in records], next_page_token=token)

    async def DeleteAudit(self, request: pb.DeleteAuditRequest, context: Ctx) -> pb.DeleteAuditResponse:
        deleted = await self._store.delete_audit(
            _require(request.creator_id, "creator_id"),
            fan_id=request.fan_id,
            record_ids=list(request.record_ids),
            before=request.before.ToDatetime(tzinfo=UTC) if request.HasField("before") else None,
        )
        return pb.DeleteAuditResponse(deleted=deleted)

    async def PurgeAudit(self, request: pb.PurgeAuditRequest, context: Ctx) -> pb.PurgeAuditResponse:
        if request.creator_id:
            controls = await self._store.get_controls(request.creator_id)
            deleted = await self._store.purge_expired(request.creator_id, controls.audit_retention_days)
        else:
            deleted = await self._store.purge_all_expired()
        return pb.PurgeAuditResponse(deleted=deleted)

    async def _spend(self, controls: Controls, creator_id: str, fan_id: str) -> None:
        if self._limiter is None:
            return
        buckets = [
            Bucket(f"fan:{creator_id}/{fan_id}", controls.fan_rate),
            Bucket(f"creator:{creator_id}", controls.creator_rate),
        ]
        try:
            await self._limiter.spend(buckets)
        except RateLimited as exc:
            raise ResourceExhausted(str(exc), exc.subject) from exc
        except RateLimiterUnavailable as exc:
            raise Unavailable(str(exc)) from exc


def _embedder(target: str) -> tuple[TopicIndex, grpc.aio.Channel]:
    channel = open_channel(target)
    stub = inf_grpc.InferenceServiceStub(channel)

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        request = inf_pb.EmbedRequest(texts=list(texts))
        try:
            reply = await stub.Embed(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            # Inside the channel's reconnect back-off a call fails at once although inference may be
            # back (it starts after this service, whose start-up training tried it first).
            if exc.code() != grpc.StatusCode.UNAVAILABLE or not await ready_within(
                channel, RECONNECT_GRACE_SECONDS
            ):
                raise
            reply = await stub.Embed(request, timeout=10)
        return [list(e.values) for e in reply.embeddings]

    return TopicIndex(embed), channel


async def build(cfg: PolicyConfig) -> ServiceSpec:
    """Apply migrations, open the pool, Redis and the inference channel, and describe the service."""
    store = await open_store(cfg.database_url, max_size=cfg.pool_size)
    limiter = None
    if cfg.redis_url is not None:
        import redis.asyncio as aioredis

        # Short timeouts: a fan waits on this, and a Redis outage must fail fast (and closed).
        limiter = RateLimiter(
            aioredis.from_url(cfg.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        )
    else:
        log.warning("AVATAR_REDIS_URL is not set: rate limits are off")
    topics, channel = _embedder(cfg.inference_target) if cfg.inference_target else (None, None)
    decisions = DecisionWriter(store)
    servicer = PolicyServicer(
        store, limiter, topics, decisions, output_controls_max_age_s=cfg.output_controls_max_age_ms / 1000
    )

    servicer.train_soon()

    async def purge_forever() -> None:
        while True:
            await asyncio.sleep(cfg.audit_purge_interval_s)
            try:
                deleted = await store.purge_all_expired()
                if deleted:
                    log.info("purged %d audit records past retention", deleted)
            except Exception:  # the next round retries; a failed purge must not stop the service
                log.exception("audit purge failed")

    purger = (
        asyncio.get_running_loop().create_task(purge_forever()) if cfg.audit_purge_interval_s > 0 else None
    )

    async def stop() -> None:
        # The server has drained: every decision it made is queued; write them before the pool goes.
        await servicer.close()
        await decisions.close()
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
        if limiter is not None:
            await limiter.close()
        if channel is not None:
            await channel.close(None)
        await store.close()

    return ServiceSpec(
        name="policy",
        register=lambda server: pb_grpc.add_PolicyServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["PolicyService"].full_name],
        error_map={
            InvalidControls: grpc.StatusCode.INVALID_ARGUMENT,
            InvalidEmbedding: grpc.StatusCode.INVALID_ARGUMENT,
            VersionConflict: grpc.StatusCode.ABORTED,
            DraftNotFound: grpc.StatusCode.NOT_FOUND,
            DraftAlreadyDecided: grpc.StatusCode.FAILED_PRECONDITION,
        },
        on_stop=stop,
    )
