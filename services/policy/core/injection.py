"""Prompt-injection and jailbreak attempts in fan messages.

A fan message reaches the model as data; these patterns catch the messages that try to make it an
instruction: overriding the rules, extracting the system prompt, swapping the persona, forging chat
markup, or claiming the creator's authority. They run on normalised text (NFKC, case-folded,
invisible characters removed), so spacing and lookalike tricks are folded away first.
"""

# Regex tables: one alternative per line reads better than a pattern split mid-word.
# ruff: noqa: E501

from __future__ import annotations

import re

_RULES = (
    r"(?:instructions?|prompts?|rules?|guidelines?|directions?|guardrails?|restrictions?|programming|"
    r"polic(?:y|ies)|filters?|constraints?|directives?|training|settings|persona|limits?)"
)

_PATTERNS = (
    # "ignore all previous instructions", "forget your rules", "override the safety filters"
    r"\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|suspend|disable|turn off|throw out)\s+"
    r"(?:(?:all|any|the|your|my|these|those|every|of|previous|prior|above|earlier|preceding|former|"
    r"original|initial|system|safety|content|current|existing|old)\s+){0,4}" + _RULES + r"\b",
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:the\s+|that\s+)?(?:above|before|previous|prior|earlier)\b",
    r"\b(?:ignore|disregard)\b.{0,40}\band\s+(?:say|write|repeat|respond|reply|answer|print)\b",
    # asking for the hidden prompt
    r"\b(?:system|developer|hidden|initial|original|secret|internal|base)\s+(?:prompt|instructions?|message|rules)\b",
    r"\b(?:reveal|show|print|repeat|output|tell|leak|display|spell out|paste|dump|list|recite)\s+(?:me\s+|us\s+)?"
    r"(?:all\s+)?(?:your|the)\s+(?:\w+\s+)?(?:prompt|instructions|system message|configuration|guidelines|rules)\b",
    # "what are your instructions" is an extraction attempt; "what are the rules for a good crumb" is not
    r"\bwhat (?:are|were) your (?:exact |original |hidden |secret |system )?(?:instructions|guidelines)\b",
    r"\bwhat (?:are|were) (?:your|the) (?:exact|original|hidden|secret|system) rules\b",
    # persona swaps and named jailbreaks
    r"\b(?:you are|you're|act as|acting as|pretend to be|pretend you(?:'re| are)|roleplay as|role-play as|"
    r"behave like|become|you will be|you'll be|from now on you(?:'re| are)?)\s+(?:now\s+)?(?:an?\s+|my\s+)?"
    r"(?:dan\b|stan\b|aim\b|unfiltered|uncensored|jailbroken|evil|unrestricted|unlimited|different ai|new ai|"
    r"another ai|chatgpt|gpt|an ai without|developer mode|grandma who|dead grandma)",
    r"\b(?:jailbreak|jail-break|jailbroken|dan mode|developer mode|dev mode|god mode|do anything now|"
    r"no restrictions|no filters|without (?:any\s+)?(?:restrictions|filters|rules|limits|guidelines|censorship)|"
    r"unfiltered mode|uncensored mode)\b",
    r"\b(?:stop|quit)\s+(?:being|acting as|pretending to be|playing)\s+(?:an?\s+|the\s+)?(?:ai|avatar|assistant|bot|"
    r"chatbot|language model|persona)\b",
    r"\b(?:stop|quit)\s+(?:pretending|roleplaying|role-playing)\b",
    r"\bpretend (?:that )?(?:you|there)\s+(?:have|are|is)\s+no\b",
    r"\b(?:hypothetically|in a (?:fictional|hypothetical) (?:world|story|scenario))\b.{0,60}\b(?:no|without)\s+"
    r"(?:rules|restrictions|filters|guidelines|limits)\b",
    r"\bresponse (?:must|should) (?:start|begin) with\b",
    r"\b(?:new|updated|real|actual|override)\s+(?:instructions?|rules?|task|system prompt|orders?)\s*:",
    # forged chat markup and role headers
    r"<\|[^|<>]{1,40}\|>",
    r"\[/?inst\]",
    r"</?s>",
    r"<<\s*/?sys\s*>>",
    r"#{2,}\s*(?:system|instruction|assistant|user)\b",
    r"(?:^|\n)\s*(?:system|assistant|developer)\s*:",
    r"\b(?:admin|sudo|root|maintenance|debug)\s+(?:mode|access|override|command|privileges)\b",
    # claimed authority of the creator or the operator
    r"\b(?:i am|i'm|this is)\s+(?:your|the)\s+(?:creator|developer|admin|administrator|owner|programmer|operator|"
    r"moderator)\b",
    r"\bthis is [a-z]+ (?:speaking|herself|himself)\b",
    r"\b(?:authori[sz]ed|gave (?:me|you) permission|has approved|allowed you)\b.{0,40}?\b"
    r"(?:share|give|ignore|tell|bypass|reveal|send)\b",
    # output-format smuggling that exists to bypass filters
    r"\b(?:in|using|with) base64\b",
    r"\b(?:encode|encoded|decode|decoded)\s+(?:it|this|your answer|the answer)\b.{0,30}\b(?:base64|rot13|hex)\b",
    r"\bspell(?:ed)? (?:it )?(?:out )?(?:backwards|with spaces between)\b",
)

_INJECTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS))


def find_injection(text: str) -> str | None:
    """The part of a fan message that reads as an injection or jailbreak attempt, if any.

    Args:
        text: The fan message, normalised (NFKC, case-folded, invisible characters removed).

    Returns:
        The matched text, or ``None`` for an ordinary message.
    """
    match = _INJECTION.search(text)
    return match.group(0) if match else None
