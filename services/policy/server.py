"""PolicyService servicer: proto <-> core types, nothing else."""

from __future__ import annotations

from typing import Any

import grpc

from avatar.v1 import policy_service_pb2 as pb
from avatar.v1 import policy_service_pb2_grpc as pb_grpc
from services.common.errors import InvalidArgument
from services.common.server import ServiceSpec
from services.policy.config import PolicyConfig
from services.policy.convert import controls_from_pb, controls_to_pb, decision_to_pb
from services.policy.core.checks import check_input, check_output_sentence, needs_disclosure
from services.policy.core.controls import InvalidControls
from services.policy.core.decisions import Action, Stage
from services.policy.core.store import PolicyStore, VersionConflict, open_store

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_TEXT = 8_000


def _require(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > MAX_TEXT:
        raise InvalidArgument(f"{name} is longer than {MAX_TEXT} characters")
    return value


class PolicyServicer(pb_grpc.PolicyServiceServicer):
    """Thin adapter over the policy store and checks."""

    def __init__(self, store: PolicyStore) -> None:
        self._store = store

    async def GetControls(self, request: pb.GetControlsRequest, context: Ctx) -> pb.GetControlsResponse:
        controls = await self._store.get_controls(_require(request.creator_id, "creator_id"))
        return pb.GetControlsResponse(controls=controls_to_pb(controls))

    async def UpdateControls(
        self, request: pb.UpdateControlsRequest, context: Ctx
    ) -> pb.UpdateControlsResponse:
        expected = request.expected_version if request.HasField("expected_version") else None
        stored = await self._store.put_controls(controls_from_pb(request.controls), expected)
        return pb.UpdateControlsResponse(controls=controls_to_pb(stored))

    async def CheckInput(self, request: pb.CheckInputRequest, context: Ctx) -> pb.CheckInputResponse:
        creator_id = _require(request.creator_id, "creator_id")
        # Read fresh on every turn: a kill switch must take effect on the very next message.
        controls = await self._store.get_controls(creator_id)
        decision = check_input(controls, _require(request.message, "message"))
        if decision.action is not Action.ALLOW:
            await self._store.record_decision(
                creator_id, Stage.INPUT, decision, controls_version=controls.version
            )
        first = request.prior_turns == 0
        disclosure = (
            controls.render_disclosure(creator_id)
            if needs_disclosure(controls, first, None if first else request.minutes_since_last_turn)
            else ""
        )
        return pb.CheckInputResponse(
            decision=decision_to_pb(decision, controls.version), disclosure=disclosure
        )

    async def CheckOutput(self, request: pb.CheckOutputRequest, context: Ctx) -> pb.CheckOutputResponse:
        creator_id = _require(request.creator_id, "creator_id")
        controls = await self._store.get_controls(creator_id)
        decision = check_output_sentence(controls, _require(request.sentence, "sentence"))
        if decision.action is not Action.ALLOW:
            await self._store.record_decision(
                creator_id, Stage.OUTPUT, decision, controls_version=controls.version
            )
        return pb.CheckOutputResponse(decision=decision_to_pb(decision, controls.version))


async def build(cfg: PolicyConfig) -> ServiceSpec:
    """Apply migrations, open the pool, and describe the service."""
    store = await open_store(cfg.database_url, max_size=cfg.pool_size)
    servicer = PolicyServicer(store)
    return ServiceSpec(
        name="policy",
        register=lambda server: pb_grpc.add_PolicyServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["PolicyService"].full_name],
        error_map={
            InvalidControls: grpc.StatusCode.INVALID_ARGUMENT,
            VersionConflict: grpc.StatusCode.ABORTED,
        },
        on_stop=store.close,
    )
