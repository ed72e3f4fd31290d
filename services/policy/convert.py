"""Policy domain types <-> protos."""

from __future__ import annotations

from avatar.v1 import policy_service_pb2 as pb
from avatar.v1 import types_pb2
from services.policy.core.controls import Autonomy, BlockedTopic, Controls, DisclosureMode
from services.policy.core.decisions import Action, Decision

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
    )


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
    )


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
