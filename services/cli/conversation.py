"""Printing a streamed avatar reply in the terminal (used by `avatar chat` and `avatar demo`)."""

from __future__ import annotations

import sys
from typing import TextIO

import grpc

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import types_pb2
from services.cli.channels import cli_channel

_OUTCOME = {
    conv_pb.REPLY_OUTCOME_REFUSED: "refused by the creator's controls",
    conv_pb.REPLY_OUTCOME_HELD: "held for the creator's approval",
    conv_pb.REPLY_OUTCOME_PAUSED: "the creator has paused the avatar",
}


def converse(
    stub: conv_grpc.ConversationServiceStub,
    creator_id: str,
    fan_id: str,
    conversation_id: str,
    message: str,
    out: TextIO = sys.stdout,
) -> tuple[str, conv_pb.ReplyEnd]:
    """Send one fan message and print the reply as it streams; return (conversation id, end)."""
    request = conv_pb.ConverseRequest(
        creator_id=creator_id, fan_id=fan_id, conversation_id=conversation_id, message=message
    )
    end = conv_pb.ReplyEnd()
    for event in stub.Converse(request, timeout=120):
        kind = event.WhichOneof("event")
        if kind == "start":
            conversation_id = event.start.conversation_id
            if event.start.disclosure:
                out.write(f"  [AI disclosure] {event.start.disclosure}\n")
            if event.start.test_model:
                out.write("  [note] replies come from a random-weight TEST model: the words are noise.\n")
            out.write("avatar> ")
        elif kind == "delta":
            out.write(event.delta.text)
        elif kind == "end":
            end = event.end
        out.flush()
    out.write("\n")
    if end.outcome in _OUTCOME:
        out.write(f"  [{_OUTCOME[end.outcome]}]\n")
    for decision in end.decisions:
        reasons = ", ".join(f"{r.code}{'(' + r.topic + ')' if r.topic else ''}" for r in decision.reasons)
        out.write(f"  [policy] {types_pb2.PolicyAction.Name(decision.action)}: {reasons}\n")
    for i, cite in enumerate(end.citations, start=1):
        src = cite.source
        date = src.created_at.ToDatetime().date().isoformat() if src.HasField("created_at") else "undated"
        where = src.url or src.path
        flat = " ".join(cite.quote.split())
        quote = flat if len(flat) <= 90 else flat[:87] + "..."
        out.write(
            f"  [{i}] {types_pb2.Platform.Name(src.platform).removeprefix('PLATFORM_').lower()} "
            f'{date} {where} (score {cite.score:.2f}): "{quote}"\n'
        )
    if end.usage.prompt_tokens:
        out.write(
            f"  [tokens] prompt {end.usage.prompt_tokens} (cached {end.usage.cached_prompt_tokens}), "
            f"reply {end.usage.completion_tokens}\n"
        )
    out.flush()
    return conversation_id, end


def chat_loop(target: str, creator_id: str, fan_id: str) -> None:
    """Interactive chat: one line per fan message, empty line or Ctrl-D to leave."""
    with cli_channel(target) as channel:
        stub = conv_grpc.ConversationServiceStub(channel)
        conversation_id = ""
        print(f"Chatting with the avatar of '{creator_id}' as fan '{fan_id}'. Empty line to quit.")
        while True:
            try:
                line = input("fan> ").strip()
            except EOFError:
                break
            if not line:
                break
            try:
                conversation_id, _ = converse(stub, creator_id, fan_id, conversation_id, line)
            except grpc.RpcError as err:
                print(f"  [error] {err.code().name}: {err.details()}")
