"""Policy domain types <-> protos."""

from __future__ import annotations

from avatar.v1 import policy_service_pb2 as pb
from avatar.v1 import types_pb2
from services.common.convert import ts_to_pb
from services.common.errors import InvalidArgument
from services.policy.core.controls import (
    DEFAULT_COMMITMENT_REPLY,
    DEFAULT_CREATOR_RATE,
    DEFAULT_FAN_RATE,
    DEFAULT_QUIET_REPLY,
    Autonomy,
    BlockedTopic,
    CallToAction,
    Commitment,
    Controls,
    DisclosureMode,
    QuietHours,
    RateLimit,
)
from services.policy.core.decisions import Action, Decision, Reason
from services.policy.core.records import (
    Draft,
    DraftStatus,
    EvidenceRef,
    NewDraft,
    RecordedDecision,
    TurnOutcome,
    TurnRecord,
)

_AUTONOMY = {
    Autonomy.AUTO: pb.AUTONOMY_AUTO,
    Autonomy.APPROVAL: pb.AUTONOMY_APPROVAL,
    Autonomy.PAUSED: pb.AUTONOMY_PAUSED,
}
_AUTONOMY_BACK = {v: k for k, v in _AUTONOMY.items()} | {pb.AUTONOMY_UNSPECIFIED: Autonomy.AUTO}
_DISCLOSURE = {
    DisclosureMode.FIRST_MESSAGE: pb.DISCLOSURE_MODE_FIRST_MESSAGE,
    DisclosureMode.ALWAYS: pb.DISCLOSURE_MODE_ALWAYS,
    DisclosureMode.AFTER_GAP: pb.DISCLOSURE_MODE_AFTER_GAP,
}
_DISCLOSURE_BACK = {v: k for k, v in _DISCLOSURE.items()} | {
    pb.DISCLOSURE_MODE_UNSPECIFIED: DisclosureMode.FIRST_MESSAGE
}
_COMMITMENTS = {
    Commitment.GIVEAWAYS: pb.COMMITMENT_GIVEAWAYS,
    Commitment.MONEY: pb.COMMITMENT_MONEY,
    Commitment.MEETINGS: pb.COMMITMENT_MEETINGS,
    Commitment.CONTACT: pb.COMMITMENT_CONTACT,
    Commitment.ADVICE: pb.COMMITMENT_ADVICE,
}
_COMMITMENTS_BACK = {v: k for k, v in _COMMITMENTS.items()}
_DRAFT_STATUS = {
    DraftStatus.PENDING: pb.DRAFT_STATUS_PENDING,
    DraftStatus.APPROVED: pb.DRAFT_STATUS_APPROVED,
    DraftStatus.REJECTED: pb.DRAFT_STATUS_REJECTED,
}
DRAFT_STATUS_BACK = {v: k for k, v in _DRAFT_STATUS.items()}
"""Draft status from the wire (UNSPECIFIED is absent: callers treat it as "any")."""
_OUTCOMES = {
    TurnOutcome.ANSWERED: pb.TURN_OUTCOME_ANSWERED,
    TurnOutcome.REFUSED: pb.TURN_OUTCOME_REFUSED,
    TurnOutcome.HELD: pb.TURN_OUTCOME_HELD,
    TurnOutcome.PAUSED: pb.TURN_OUTCOME_PAUSED,
}
_OUTCOMES_BACK = {v: k for k, v in _OUTCOMES.items()}
_ACTIONS = {
    Action.ALLOW: types_pb2.POLICY_ACTION_ALLOW,
    Action.REFUSE: types_pb2.POLICY_ACTION_REFUSE,
    Action.REWRITE: types_pb2.POLICY_ACTION_REWRITE,
    Action.ABSTAIN: types_pb2.POLICY_ACTION_ABSTAIN,
    Action.HOLD: types_pb2.POLICY_ACTION_HOLD,
}


def controls_to_pb(c: Controls) -> pb.Controls:
    """Controls as the API shows them."""
    return pb.Controls(
        creator_id=c.creator_id,
        version=c.version,
        blocked_topics=[
            pb.BlockedTopic(
                name=t.name,
                description=t.description,
                keywords=list(t.keywords),
                examples=list(t.examples),
                reply=t.reply,
            )
            for t in c.blocked_topics
        ],
        disclosure_text=c.disclosure_text,
        disclosure_mode=_DISCLOSURE[c.disclosure_mode],
        disclosure_gap_minutes=c.disclosure_gap_minutes,
        autonomy=_AUTONOMY[c.autonomy],
        never_claim=list(c.never_claim),
        stated_facts=list(c.stated_facts),
        allowed_link_domains=list(c.allowed_link_domains),
        commitments=pb.CommitmentRules(
            kinds=[_COMMITMENTS[k] for k in c.forbidden_commitments],
            custom=list(c.custom_commitments),
            reply=c.commitment_reply,
        ),
        calls_to_action=[pb.CallToAction(name=a.name, url=a.url) for a in c.calls_to_action],
        grounding=c.grounding,
        injection_reply=c.injection_reply,
        rate_limits=pb.RateLimits(fan=_rate_to_pb(c.fan_rate), creator=_rate_to_pb(c.creator_rate)),
        quiet_hours=None
        if c.quiet_hours is None
        else pb.QuietHours(
            start_minute=c.quiet_hours.start_minute,
            end_minute=c.quiet_hours.end_minute,
            time_zone=c.quiet_hours.timezone,
            reply=c.quiet_hours.reply,
        ),
        min_fan_age=c.min_fan_age,
        require_verified_age=c.require_verified_age,
        age_reply=c.age_reply,
        audit_retention_days=c.audit_retention_days,
    )


def _rate_to_pb(r: RateLimit) -> pb.RateLimit:
    return pb.RateLimit(per_minute=r.per_minute, burst=r.burst)


def _rate_from_pb(parent: pb.RateLimits, name: str, default: RateLimit) -> RateLimit:
    if not parent.HasField(name):  # type: ignore[arg-type]
        return default
    msg: pb.RateLimit = getattr(parent, name)
    return RateLimit(per_minute=msg.per_minute, burst=msg.burst)


def controls_from_pb(msg: pb.Controls) -> Controls:
    """Controls from the API; empty fields take the defaults, validation happens in the store."""
    default = Controls.default(msg.creator_id)
    return Controls(
        creator_id=msg.creator_id,
        version=0,
        blocked_topics=tuple(
            BlockedTopic(
                name=t.name,
                description=t.description,
                keywords=tuple(t.keywords),
                examples=tuple(t.examples),
                reply=t.reply or BlockedTopic(name=t.name).reply,
            )
            for t in msg.blocked_topics
        ),
        disclosure_text=msg.disclosure_text or default.disclosure_text,
        disclosure_mode=_DISCLOSURE_BACK[msg.disclosure_mode],
        disclosure_gap_minutes=msg.disclosure_gap_minutes or default.disclosure_gap_minutes,
        autonomy=_AUTONOMY_BACK[msg.autonomy],
        never_claim=tuple(msg.never_claim),
        stated_facts=tuple(msg.stated_facts),
        allowed_link_domains=tuple(msg.allowed_link_domains),
        forbidden_commitments=(
            tuple(_commitment(k) for k in msg.commitments.kinds)
            if msg.HasField("commitments")
            else default.forbidden_commitments
        ),
        custom_commitments=tuple(msg.commitments.custom),
        commitment_reply=msg.commitments.reply or DEFAULT_COMMITMENT_REPLY,
        calls_to_action=tuple(CallToAction(name=a.name, url=a.url) for a in msg.calls_to_action),
        grounding=msg.grounding if msg.HasField("grounding") else True,
        injection_reply=msg.injection_reply or default.injection_reply,
        fan_rate=_rate_from_pb(msg.rate_limits, "fan", DEFAULT_FAN_RATE),
        creator_rate=_rate_from_pb(msg.rate_limits, "creator", DEFAULT_CREATOR_RATE),
        quiet_hours=QuietHours(
            start_minute=msg.quiet_hours.start_minute,
            end_minute=msg.quiet_hours.end_minute,
            timezone=msg.quiet_hours.time_zone or "UTC",
            reply=msg.quiet_hours.reply or DEFAULT_QUIET_REPLY,
        )
        if msg.HasField("quiet_hours")
        else None,
        min_fan_age=msg.min_fan_age,
        require_verified_age=msg.require_verified_age,
        age_reply=msg.age_reply or default.age_reply,
        audit_retention_days=msg.audit_retention_days or default.audit_retention_days,
    )


def _commitment(value: pb.Commitment.ValueType) -> Commitment:
    kind = _COMMITMENTS_BACK.get(value)
    if kind is None:
        raise InvalidArgument(f"controls.commitments.kinds has an unknown or unset kind ({value})")
    return kind


def decision_to_pb(d: Decision, controls_version: int) -> types_pb2.PolicyDecision:
    """A decision with its machine-readable reasons."""
    return types_pb2.PolicyDecision(
        action=_ACTIONS[d.action],
        reasons=[
            types_pb2.PolicyReason(code=r.code, detail=r.detail, topic=r.topic or "") for r in d.reasons
        ],
        text=d.text or "",
        controls_version=controls_version,
    )


def decision_from_pb(msg: types_pb2.PolicyDecision) -> RecordedDecision:
    """A decision reported by the gateway (unknown actions are rejected, never guessed)."""
    back = {v: k for k, v in _ACTIONS.items()}
    action = back.get(msg.action)
    if action is None:
        raise InvalidArgument(f"decision action {msg.action} is not a known action")
    reasons = tuple(Reason(r.code, r.detail, r.topic or None) for r in msg.reasons)
    return RecordedDecision(Decision(action, reasons, msg.text or None), int(msg.controls_version))


def recorded_to_pb(d: RecordedDecision) -> types_pb2.PolicyDecision:
    """A stored decision for the API."""
    return decision_to_pb(d.decision, d.controls_version)


def evidence_from_pb(e: pb.EvidenceRef) -> EvidenceRef:
    """Evidence reference from the wire."""
    return EvidenceRef(chunk_id=e.chunk_id, quote=e.quote, score=e.score)


def evidence_to_pb(e: EvidenceRef) -> pb.EvidenceRef:
    """Evidence reference for the API."""
    return pb.EvidenceRef(chunk_id=e.chunk_id, quote=e.quote, score=e.score)


def new_draft_from_pb(d: pb.Draft) -> NewDraft:
    """A draft submitted by the gateway."""
    return NewDraft(
        creator_id=d.creator_id,
        fan_id=d.fan_id,
        conversation_id=d.conversation_id,
        fan_message=d.fan_message,
        draft_text=d.draft_text,
        evidence=tuple(evidence_from_pb(e) for e in d.evidence),
        decisions=tuple(decision_from_pb(x) for x in d.decisions),
        controls_version=int(d.controls_version),
    )


def draft_to_pb(d: Draft) -> pb.Draft:
    """A stored draft for the creator's console."""
    return pb.Draft(
        draft_id=d.draft_id,
        creator_id=d.new.creator_id,
        fan_id=d.new.fan_id,
        conversation_id=d.new.conversation_id,
        fan_message=d.new.fan_message,
        draft_text=d.new.draft_text,
        evidence=[evidence_to_pb(e) for e in d.new.evidence],
        decisions=[recorded_to_pb(x) for x in d.new.decisions],
        controls_version=d.new.controls_version,
        status=_DRAFT_STATUS[d.status],
        final_text=d.final_text or "",
        edited=d.edited,
        note=d.note,
        created_at=ts_to_pb(d.created_at),
        decided_at=ts_to_pb(d.decided_at),
        delivered_at=ts_to_pb(d.delivered_at),
    )


def fan_reply_to_pb(d: Draft) -> pb.FanReply:
    """A draft as the fan may see it: the approved text and nothing of the unapproved draft."""
    return pb.FanReply(
        reply_id=d.draft_id,
        conversation_id=d.new.conversation_id,
        status=_DRAFT_STATUS[d.status],
        text=d.final_text or "" if d.status is DraftStatus.APPROVED else "",
        fan_message=d.new.fan_message,
        delivered=d.delivered_at is not None,
    )


def turn_record_from_pb(r: pb.TurnRecord) -> TurnRecord:
    """A turn reported by the gateway."""
    outcome = _OUTCOMES_BACK.get(r.outcome)
    if outcome is None:
        raise InvalidArgument("record.outcome is required")
    return TurnRecord(
        creator_id=r.creator_id,
        fan_id=r.fan_id,
        conversation_id=r.conversation_id,
        fan_message=r.fan_message,
        outcome=outcome,
        retrieved=tuple(evidence_from_pb(e) for e in r.retrieved),
        draft_text=r.draft_text,
        decisions=tuple(decision_from_pb(d) for d in r.decisions),
        final_text=r.final_text,
        controls_version=int(r.controls_version),
        draft_id=r.draft_id,
        system_prompt=r.system_prompt,
        persona_version=int(r.persona_version),
        voice_examples_version=int(r.voice_examples_version),
    )


def turn_record_to_pb(r: TurnRecord) -> pb.TurnRecord:
    """An audit record for the creator."""
    return pb.TurnRecord(
        record_id=r.record_id,
        creator_id=r.creator_id,
        fan_id=r.fan_id,
        conversation_id=r.conversation_id,
        fan_message=r.fan_message,
        retrieved=[evidence_to_pb(e) for e in r.retrieved],
        draft_text=r.draft_text,
        decisions=[recorded_to_pb(d) for d in r.decisions],
        final_text=r.final_text,
        outcome=_OUTCOMES[r.outcome],
        controls_version=r.controls_version,
        draft_id=r.draft_id,
        created_at=ts_to_pb(r.created_at),
        system_prompt=r.system_prompt,
        persona_version=r.persona_version,
        voice_examples_version=r.voice_examples_version,
    )
