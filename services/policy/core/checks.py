"""Enforcement of a creator's controls: pure, deterministic functions over text.

``check_input`` runs on the fan's message before anything is retrieved or generated;
``check_output_sentence`` runs on each sentence the avatar produces, before it is released;
``needs_disclosure`` says whether the reply must carry the AI label.

Matching rules for blocked-topic keywords and never-claim phrases (the same for both):

* whole words only, case-insensitive: ``cake`` matches "Cake!", "#cake" and "cake's" but not
  "cakewalk" or "pancake" — a creator blocking "cake" is not blocking every word that contains it;
* plural tolerant in both directions: ``cake`` matches "cakes", ``party`` matches "parties",
  ``kids`` matches "kid", ``child`` matches "children" (a short irregular table);
* no other stemming: ``kid`` must not match "kidding", and verb endings are where naive stemmers go
  wrong, so creators list those forms themselves;
* the words of a phrase may be joined by spaces, hyphens, underscores or nothing at all:
  ``give away`` matches "give-away" and "giveaway";
* text is NFKC-normalised, case-folded and stripped of invisible characters first, so fullwidth
  letters or a zero-width space inside a word do not slip past a keyword.

A blocked topic also matches the everyday words for the subjects its name, description or
keywords name (``lexicon.py``: a topic about "children" matches "little ones", one about
"diets" matches "calories"), by the same rules as its keywords. A keyword found only inside an
everyday sense of the word (``lexicon.BENIGN_SENSES``: "measured by weight", "weigh the flour", "a
rich dough", Spanish "son") does not match; the message is still judged by meaning.

Compiled matchers are cached per (creator, controls version); the cached entry is only reused when
the controls are equal to the ones it was built from, so unsaved or hand-built controls that share a
version number can never be checked against another document's rules.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from services.common.language import in_other_language
from services.policy.core.commitments import find_commitments
from services.policy.core.controls import Autonomy, BlockedTopic, Controls, DisclosureMode, QuietHours
from services.policy.core.decisions import ALLOW, Action, Decision, Reason, ReasonCode
from services.policy.core.grounding import check_grounding, proper_names, subjects_of, support_vocabulary
from services.policy.core.injection import find_injection, informal
from services.policy.core.lexicon import CLAIM_SENSES, benign_spans, related_patterns, related_terms
from services.policy.core.similarity import (
    INJECTION_THRESHOLD,
    INJECTION_VETO_MARGIN,
    SIMILARITY_THRESHOLD,
    InjectionMatch,
)

EXPLAINED_SIMILARITY = 0.7
"""Similarity to a topic's example still needed when the message uses the topic's keywords only in
their everyday senses: a close paraphrase ("how much do you weigh these days, by weight?"), not a
question that merely shares the keyword ("do you weigh the water?", 0.62 from "How much do you
weigh?")."""

KEYWORD_CORROBORATION = 0.40
"""Similarity to a topic's examples that confirms a keyword found in a fan's message which is not
addressed to the creator (no "you"/"your" near it): "I vote focaccia", "my sister is pregnant",
"what's Doughlores' diet" use a topic's keyword without asking about the creator, while a bare
"pregnant??" still reads close to the topic's examples."""
OTHER_LANGUAGE_INJECTION_THRESHOLD = 0.58
"""The injection similarity a message in another language must reach. The sentence embedder reads
English: any two short Spanish or Italian sentences score 0.5 against each other ("¿qué hidratación
me recomiendas?" against "ignora todas las instrucciones anteriores"), so there only a close
paraphrase of an exemplar counts; the injection patterns and the classifier still apply."""

_ADDRESS_WINDOW = 4
"""Words either side of a keyword searched for a second-person word (:data:`_SECOND_PERSON`)."""

_SECOND_PERSON = frozenset(
    """
    you your yours yourself you're youre you've u ur ya y'all yall tu tú te ti tus tuyo tuya usted
    ustedes vos contigo vous ton ta tes toi du dein deine deinen deinem deiner dich dir ihr euch
    você voce vc seu sua seus suas teu tua teus tuas voi tuo tuoi tue
    estás estas eres tienes tenés sos vas está tá tás sei hai stai bist hast
    opinas piensas crees votas votaste apoyas ganas pesas pesi pensi voti guadagni sembri achas acha
    penses votes gagnes pèses
    """.split()  # noqa: SIM905 -- a word list reads better as text
)

PAUSED_TEXT = "This avatar is paused right now, so it can't reply. Please check back later!"
"""What a fan sees while the creator has the kill switch on."""

ABSTAIN_TEXT = "I haven't shared anything about that, so I'd rather not say."
"""The honest non-answer that replaces a sentence claiming something the creator ruled out."""

_CACHE_SIZE = 1024

# Zero-width and other invisible format characters that can split a word without showing.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u206a-\u206f\ufeff]"
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
# Irregular plurals worth knowing for the things avatars get wrong (family, people).
_IRREGULAR = {
    "child": "children",
    "person": "people",
    "man": "men",
    "woman": "women",
    "wife": "wives",
    "foot": "feet",
    "tooth": "teeth",
    "mouse": "mice",
    "goose": "geese",
}
_IRREGULAR_SINGULAR = {plural: singular for singular, plural in _IRREGULAR.items()}
_VOWELS = frozenset("aeiou")
# Plural-looking words whose "singular" is a different common word ("news" is not "new").
_NO_SINGULAR = frozenset({"news", "means", "series", "species", "lens", "always"})
# Joins the words of a phrase: the text may use spaces, hyphens, underscores or nothing.
_JOIN = r"[\s\-_]*"

# Links: explicit schemes, "www." hosts, and bare hosts under common TLDs. The TLD list is short on
# purpose: "Node.js" or "e.g." must not be taken for links, and bare hosts under rarer TLDs are not
# clickable in most clients anyway.
_URL = re.compile(
    r"""(?<![\w@.\-/])(?:
        (?:https?|ftp)://[^\s<>"'`]+
      | www\.[^\s<>"'`]+
      | (?:[a-z0-9\-]+\.)+
        (?:com|net|org|io|co|ly|me|gg|tv|app|dev|xyz|info|biz|shop|store|link|to|ai|us|uk|de|fr|ca|au)
        \b(?![.\-]\w)(?::\d{1,5})?(?:[/?\#][^\s<>"'`]*)?
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_TRAILING = ".,;:!?'\""
_CLOSERS = {")": "(", "]": "[", "}": "{"}
# Tidying what a removed link leaves behind: markdown "[label]()" becomes "label", empty brackets go.
_MD_EMPTY_LINK = re.compile(r"\[([^\]]*)\]\(\s*\)")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]|<\s*>")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?])")
_SPACES = re.compile(r"[ \t]{2,}")
# The first word of a sentence (after "yes,", "oh," and the like), without a possessive: who it is about.
_CLAUSE = re.compile(r"[,;:]|\s(?:and|but|while|so|because|though)\s")
_LEAD = re.compile(r"^\W*(?:(?:yes|yeah|yep|oh|well|so|and|haha|lol|aw|aww|honestly)\W+)*([a-z]+)(?:'s)?\b")


@dataclass(frozen=True)
class _Matchers:
    """Regexes compiled from one controls document."""

    any_topic: re.Pattern[str] | None
    topics: tuple[tuple[BlockedTopic, re.Pattern[str]], ...]
    any_claim: re.Pattern[str] | None
    claims: tuple[tuple[str, re.Pattern[str]], ...]
    any_commitment: re.Pattern[str] | None
    commitments: tuple[tuple[str, re.Pattern[str]], ...]


# A call to action aimed at the fan: a verb of subscribing/buying/following and the creator's own
# thing ("sign up for my newsletter", "buy our course"), or the usual off-platform funnels.
_CTA = re.compile(
    r"\b(?:subscribe|sign\s*up|join|buy|order|shop|purchase|pre-?order|check\s+out|follow|support|"
    r"enroll|enrol|register|download|grab|get|book|visit|head\s+to|go\s+to)\s+(?:to\s+|for\s+|at\s+|on\s+|"
    r"in\s+|from\s+|up\s+for\s+)?(?:my|our)\s+(?:new\s+|latest\s+)?"
    r"(?:newsletter|shop|store|course|class(?:es)?|merch|book|ebook|e-book|patreon|channel|podcast|"
    r"membership|program|programme|app|workshop|masterclass|coaching|subscription|mailing\s+list|"
    r"discord|community|onlyfans|ko-?fi|cameo|link|website|site|page|profile|account|products?|"
    r"kits?|plans?|guides?|presets?)\b"
    r"|\buse\s+(?:my\s+|our\s+|the\s+)?(?:promo\s+|discount\s+)?code\b"
    r"|\blink\s+in\s+(?:my\s+)?bio\b"
    r"|\b(?:patreon|onlyfans|ko-?fi|cameo|linktree)\b"
)


@dataclass(frozen=True)
class FanInfo:
    """What the fan app tells policy about the fan.

    Attributes:
        age: The fan's age as declared by the fan or verified by the app; ``None`` when unknown.
        age_verified: The fan app verified ``age`` (an ID check, an app-store age rating...).
    """

    age: int | None = None
    age_verified: bool = False


_cache: OrderedDict[tuple[str, int], tuple[Controls, _Matchers]] = OrderedDict()
# gRPC servers may run handlers on several threads; the lock keeps the LRU bookkeeping consistent.
_cache_lock = threading.Lock()


def check_input(
    controls: Controls,
    message: str,
    *,
    fan: FanInfo | None = None,
    now: datetime | None = None,
    topic_scores: Mapping[str, float] | None = None,
    learned_topics: Mapping[str, float] | None = None,
    injection: InjectionMatch | None = None,
) -> Decision:
    """Decide what to do with a fan's message before the avatar answers it.

    Order of precedence: ``PAUSED`` refuses everything; the fan age gate; quiet hours; then a prompt
    injection refuses with the creator's injection reply and a blocked topic (by keyword or by
    similarity to its examples) with the reply of the first matching topic in the creator's order,
    both even under ``APPROVAL``, since queueing a message that will be refused anyway only wastes
    the creator's time; ``APPROVAL`` holds the turn; otherwise the message is allowed.

    Args:
        controls: The creator's current controls.
        message: The fan's message, as received.
        fan: What the fan app says about the fan; ``None`` = nothing (fails an age gate).
        now: The current time, for quiet hours; ``None`` = the system clock.
        topic_scores: Best similarity of the message to each topic's examples (see
            ``similarity.py``); topics at or above the threshold count as matched.
        learned_topics: Topics the learned classifiers place the message on, with their margin
            (``similarity.TopicModel.learned_topics``); each counts as matched.
        injection: The built-in injection exemplar nearest to the message (see
            ``similarity.InjectionBank``); at or above ``INJECTION_THRESHOLD`` (unless the
            classifier's ``learned_margin`` is below ``-INJECTION_VETO_MARGIN``), or with a
            non-negative ``learned_margin``, the message is an injection even when no pattern
            matched.

    Returns:
        The decision; its reasons list every rule the message broke (injection and every matching
        topic).
    """
    if controls.autonomy is Autonomy.PAUSED:
        return _paused()
    age = _age_reason(controls, fan or FanInfo())
    if age is not None:
        return Decision(Action.REFUSE, (age,), controls.age_reply)
    if controls.quiet_hours is not None and in_quiet_hours(controls.quiet_hours, now or datetime.now(UTC)):
        reason = Reason(ReasonCode.QUIET_HOURS, "the creator's quiet hours are on")
        return Decision(Action.REFUSE, (reason,), controls.quiet_hours.reply)
    matchers = _matchers(controls)
    text = _normalise(message)
    injected = find_injection(text, message)
    injection_reasons: tuple[Reason, ...] = ()
    if injected is not None:
        detail = f"message tries to instruct the avatar: {injected!r}"
        injection_reasons = (Reason(ReasonCode.PROMPT_INJECTION, detail),)
    elif (
        injection is not None
        and injection.similarity >= _injection_threshold(text)
        and (injection.learned_margin is None or injection.learned_margin >= -INJECTION_VETO_MARGIN)
    ):
        detail = (
            f"message reads like an injection attempt (similarity {injection.similarity:.2f} "
            f"to {injection.exemplar!r})"
        )
        injection_reasons = (Reason(ReasonCode.PROMPT_INJECTION, detail),)
    elif injection is not None and injection.learned_margin is not None and injection.learned_margin >= 0:
        detail = (
            f"the injection classifier reads the message as an attempt to instruct the avatar "
            f"(margin {injection.learned_margin:.2f}; nearest exemplar {injection.exemplar!r})"
        )
        injection_reasons = (Reason(ReasonCode.PROMPT_INJECTION, detail),)
    # Keywords are also looked for in the message's chat-shorthand folding ("r u expecting").
    folded = informal(text)
    by_keyword = _topic_reasons(matchers, text, "message") or (
        _topic_reasons(matchers, folded, "message") if folded != text else ()
    )
    # A keyword the fan uses without asking about the creator needs the topic's meaning too. Without
    # similarity scores (no embedding reached the check) a keyword still counts by itself: fail safe.
    by_keyword = tuple(
        r
        for r in by_keyword
        if topic_scores is None
        or r.topic is None
        or topic_scores.get(r.topic, -1.0) >= KEYWORD_CORROBORATION
        or r.topic in (learned_topics or {})
        or _addressed(matchers, r.topic, text)
        or (folded != text and _addressed(matchers, r.topic, folded))
    )
    topics = by_keyword + _similar_topic_reasons(
        controls,
        {r.topic for r in by_keyword},
        topic_scores or {},
        learned_topics or {},
        _explained_topics(matchers, text),
    )
    reasons = injection_reasons + topics
    if injection_reasons:
        return Decision(Action.REFUSE, reasons, controls.injection_reply)
    if reasons:
        return Decision(Action.REFUSE, reasons, _topic_reply(controls, reasons[0]))
    if controls.autonomy is Autonomy.APPROVAL:
        reason = Reason(ReasonCode.APPROVAL_REQUIRED, "the creator approves every reply before it is sent")
        return Decision(Action.HOLD, (reason,))
    return ALLOW


def check_output_sentence(
    controls: Controls, sentence: str, evidence: Sequence[str] | None = None
) -> Decision:
    """Decide whether one sentence the avatar generated may be released.

    Order of precedence: ``PAUSED`` refuses (the kill switch also stops a reply already streaming);
    a never-claim phrase, or a first-person factual claim that neither ``evidence`` nor the stated
    facts support, abstains with :data:`ABSTAIN_TEXT`; a forbidden commitment rewrites the sentence
    to the creator's commitment reply; a blocked topic rewrites it to the topic's reply; a link
    outside ``allowed_link_domains`` and the calls to action rewrites it with the link removed; a
    call to action the creator did not list drops the sentence (rewrite to ``""``). Reasons from
    every rule that fired are kept, strongest first.

    Args:
        controls: The creator's current controls.
        sentence: One sentence of the avatar's reply.
        evidence: The creator content retrieved for this turn. ``None`` skips grounding (for
            callers that check text with no turn behind it); the live path always passes it,
            possibly empty, and then an unsupported claim abstains.

    Returns:
        The decision; ``text`` is the sentence to send instead when the action is not ``ALLOW``.
    """
    if controls.autonomy is Autonomy.PAUSED:
        return _paused()
    matchers = _matchers(controls)
    text = _normalise(sentence)
    claim_reasons = _claim_reasons(matchers, text)
    grounding_reasons: tuple[Reason, ...] = ()
    claimed = False
    if evidence is not None and controls.grounding:
        subjects = _subjects(controls.stated_facts)
        names = proper_names(sentence)
        verdict = check_grounding(text, _vocabulary(tuple(evidence), controls.stated_facts), subjects, names)
        lead = _LEAD.match(text)
        if verdict.supported and lead is not None and lead.group(1) in subjects:
            # A sentence about someone in the creator's life ("Leo's favourite is...", "Crumb sleeps
            # on...") rests on what the evidence says about them: its first clause is judged
            # against the passages that name them, not against words found elsewhere.
            clause = _CLAUSE.split(text, maxsplit=1)[0]
            about = _subject_vocabulary(tuple(evidence), controls.stated_facts, lead.group(1))
            verdict = check_grounding(clause, about, subjects, names)
        claimed = verdict.is_claim
        if not verdict.supported:
            missing = ", ".join(verdict.missing[:8])
            grounding_reasons = (
                Reason(
                    ReasonCode.UNSUPPORTED_CLAIM,
                    f"claim not supported by the creator's content (missing: {missing})",
                ),
            )
    commitment_reasons = tuple(
        Reason(
            ReasonCode.FORBIDDEN_COMMITMENT,
            f"reply commits to {kind.value} ({words!r})",
            kind.value,
        )
        for kind, words in find_commitments(text, controls.forbidden_commitments)
    ) + _custom_commitment_reasons(matchers, text)
    topic_reasons = _topic_reasons(matchers, text, "reply")
    links = _disallowed_links(controls, sentence)
    link_reasons = tuple(
        Reason(ReasonCode.LINK_NOT_ALLOWED, f"link to {host or 'an unreadable host'} is not allowed")
        for _, _, host in links
    )
    cta = _disallowed_cta(controls, text)
    cta_reasons = (
        (Reason(ReasonCode.CTA_NOT_ALLOWED, f"call to action {cta!r} is not one of the creator's"),)
        if cta is not None
        else ()
    )
    reasons = (
        claim_reasons + grounding_reasons + commitment_reasons + topic_reasons + link_reasons + cta_reasons
    )
    # An unsupported detail of a sentence that is no first-person claim (a price, a time, an
    # address) yields to a commitment in the same sentence: the promise is what to rewrite.
    if claim_reasons or (grounding_reasons and (claimed or not commitment_reasons)):
        return Decision(Action.ABSTAIN, reasons, ABSTAIN_TEXT)
    if commitment_reasons:
        return Decision(Action.REWRITE, reasons, controls.commitment_reply)
    if topic_reasons:
        return Decision(Action.REWRITE, reasons, _topic_reply(controls, topic_reasons[0]))
    if cta_reasons:
        return Decision(Action.REWRITE, reasons, "")
    if link_reasons:
        return Decision(Action.REWRITE, reasons, _remove_spans(sentence, [(s, e) for s, e, _ in links]))
    return ALLOW


def in_quiet_hours(quiet: QuietHours, now: datetime) -> bool:
    """Whether ``now`` falls in the creator's daily quiet window (in the creator's time zone)."""
    local = now.astimezone(ZoneInfo(quiet.timezone))
    minute = local.hour * 60 + local.minute
    if quiet.start_minute < quiet.end_minute:
        return quiet.start_minute <= minute < quiet.end_minute
    return minute >= quiet.start_minute or minute < quiet.end_minute


def needs_disclosure(controls: Controls, is_first_turn: bool, minutes_since_last_turn: float | None) -> bool:
    """Whether this reply must carry the AI disclosure.

    Args:
        controls: The creator's current controls.
        is_first_turn: This is the first reply in the conversation.
        minutes_since_last_turn: Idle time since the previous turn; ``None`` when unknown.

    Returns:
        True when the label must be shown. When in doubt (unknown or NaN idle time under
        ``AFTER_GAP``) it is shown: an extra label costs nothing, a missing one misleads a fan.
    """
    if is_first_turn or controls.disclosure_mode is DisclosureMode.ALWAYS:
        return True
    if controls.disclosure_mode is DisclosureMode.AFTER_GAP:
        if minutes_since_last_turn is None or math.isnan(minutes_since_last_turn):
            return True
        return minutes_since_last_turn >= controls.disclosure_gap_minutes
    return False


# -- rules ---------------------------------------------------------------------------------------


def _paused() -> Decision:
    reason = Reason(ReasonCode.AUTONOMY_PAUSED, "the creator has paused the avatar")
    return Decision(Action.REFUSE, (reason,), PAUSED_TEXT)


def _age_reason(controls: Controls, fan: FanInfo) -> Reason | None:
    if controls.min_fan_age == 0:
        return None
    if fan.age is None:
        return Reason(
            ReasonCode.FAN_AGE, f"the fan's age is unknown; the creator requires {controls.min_fan_age}+"
        )
    if controls.require_verified_age and not fan.age_verified:
        return Reason(ReasonCode.FAN_AGE, "the creator requires an age verified by the fan app")
    if fan.age < controls.min_fan_age:
        return Reason(
            ReasonCode.FAN_AGE, f"the fan is {fan.age}; the creator requires {controls.min_fan_age}+"
        )
    return None


def _injection_threshold(text: str) -> float:
    return OTHER_LANGUAGE_INJECTION_THRESHOLD if in_other_language(text) else INJECTION_THRESHOLD


def _similar_topic_reasons(
    controls: Controls,
    by_keyword: set[str | None],
    scores: Mapping[str, float],
    learned: Mapping[str, float],
    explained: frozenset[str] = frozenset(),
) -> tuple[Reason, ...]:
    # Topics already matched by keyword are not repeated; the others are reported in creator order,
    # by similarity to an example where that holds, else by the learned classifier. A topic whose
    # keywords the message uses only in their everyday senses ("do you weigh the water?") is
    # explained by them: only a close paraphrase of an example still counts, not the classifier.
    reasons = []
    for t in controls.blocked_topics:
        if t.name in by_keyword:
            continue
        threshold = EXPLAINED_SIMILARITY if t.name in explained else SIMILARITY_THRESHOLD
        if scores.get(t.name, -1.0) >= threshold:
            detail = (
                f"message is close to an example of blocked topic {t.name!r} "
                f"(similarity {scores[t.name]:.2f})"
            )
        elif t.name in learned and t.name not in explained:
            detail = (
                f"the classifier of blocked topic {t.name!r} places the message on it "
                f"(margin {learned[t.name]:.2f})"
            )
        else:
            continue
        reasons.append(Reason(ReasonCode.BLOCKED_TOPIC, detail, t.name))
    return tuple(reasons)


def _custom_commitment_reasons(matchers: _Matchers, text: str) -> tuple[Reason, ...]:
    if matchers.any_commitment is None or matchers.any_commitment.search(text) is None:
        return ()
    return tuple(
        Reason(
            ReasonCode.FORBIDDEN_COMMITMENT,
            f"reply commits to {phrase!r}, which the creator forbids",
            "custom",
        )
        for phrase, pattern in matchers.commitments
        if pattern.search(text) is not None
    )


def _disallowed_cta(controls: Controls, text: str) -> str | None:
    match = _CTA.search(text)
    if match is None:
        return None
    if any(cta.name.casefold() in text for cta in controls.calls_to_action):
        return None
    return match.group(0)


@functools.lru_cache(maxsize=256)
def _vocabulary(evidence: tuple[str, ...], facts: tuple[str, ...]) -> frozenset[str]:
    # One turn checks many sentences against the same evidence: build its vocabulary once.
    return support_vocabulary(evidence + facts)


@functools.lru_cache(maxsize=256)
def _subject_vocabulary(evidence: tuple[str, ...], facts: tuple[str, ...], subject: str) -> frozenset[str]:
    # Only the passages that name the subject: what the evidence says about Leo, not about bread.
    named = re.compile(r"(?<!\w)" + re.escape(subject) + r"(?!\w)")
    return support_vocabulary(tuple(t for t in evidence + facts if named.search(t.casefold())))


@functools.lru_cache(maxsize=256)
def _subjects(facts: tuple[str, ...]) -> frozenset[str]:
    return subjects_of(facts)


def _explained_topics(matchers: _Matchers, text: str) -> frozenset[str]:
    """Topics whose keywords occur in ``text`` only inside everyday senses of them."""
    if matchers.any_topic is None or matchers.any_topic.search(text) is None:
        return frozenset()
    benign = benign_spans(text, message=True)
    explained = set()
    for topic, pattern in matchers.topics:
        spans = [m.span() for m in pattern.finditer(text)]
        if spans and all(any(s <= a and b <= e for s, e in benign) for a, b in spans):
            explained.add(topic.name)
    return frozenset(explained)


def _topic_reasons(matchers: _Matchers, text: str, where: str) -> tuple[Reason, ...]:
    # One combined pass rejects the common clean message; only a hit pays for per-topic scans.
    if matchers.any_topic is None or matchers.any_topic.search(text) is None:
        return ()
    # A keyword inside an everyday sense of it ("by weight", "weigh the flour") is not the topic;
    # the classifier and the examples still judge the message by its meaning.
    benign = benign_spans(text, message=where == "message")
    reasons = []
    for topic, pattern in matchers.topics:
        match = next(
            (
                m
                for m in pattern.finditer(text)
                if not any(s <= m.start() and m.end() <= e for s, e in benign)
            ),
            None,
        )
        if match is not None:
            detail = f"{where} mentions {match.group(0)!r}, a keyword of blocked topic {topic.name!r}"
            reasons.append(Reason(ReasonCode.BLOCKED_TOPIC, detail, topic.name))
    return tuple(reasons)


def _addressed(matchers: _Matchers, topic: str, text: str) -> bool:
    """Whether a keyword of ``topic`` in ``text`` is a phrase, or has a second-person word near it."""
    benign = benign_spans(text, message=True)
    for t, pattern in matchers.topics:
        if t.name != topic:
            continue
        for m in pattern.finditer(text):
            if any(s <= m.start() and m.end() <= e for s, e in benign):
                continue
            if len(_ADDRESS_WORD.findall(m.group(0))) > 1:
                return True  # a keyword phrase ("bun in the oven") is specific enough by itself
            before = _ADDRESS_WORD.findall(text[: m.start()])[-_ADDRESS_WINDOW:]
            inside = _ADDRESS_WORD.findall(m.group(0))  # a keyword phrase may hold it ("are you expecting")
            after = _ADDRESS_WORD.findall(text[m.end() :])[:_ADDRESS_WINDOW]
            if any(w in _SECOND_PERSON for w in (*before, *inside, *after)):
                return True
    return False


_ADDRESS_WORD = re.compile(r"[\w'’]+")


def _topic_reply(controls: Controls, reason: Reason) -> str:
    return next(t.reply for t in controls.blocked_topics if t.name == reason.topic)


def _claim_reasons(matchers: _Matchers, text: str) -> tuple[Reason, ...]:
    if matchers.any_claim is None or matchers.any_claim.search(text) is None:
        return ()
    return tuple(
        Reason(ReasonCode.NEVER_CLAIM, f"reply claims {phrase!r}, which the creator never wants said")
        for phrase, pattern in matchers.claims
        if pattern.search(text) is not None
    )


def _disallowed_links(controls: Controls, sentence: str) -> list[tuple[int, int, str | None]]:
    """``(start, end, host)`` of each link in ``sentence`` whose host is not allowed."""
    found = []
    allowed = controls.allowed_link_domains
    for match in _URL.finditer(sentence):
        start, url = match.start(), match.group(0).rstrip(_TRAILING)
        # A closing bracket belongs to the link only if the link opened one (Wikipedia-style).
        while url and url[-1] in _CLOSERS and url.count(url[-1]) > url.count(_CLOSERS[url[-1]]):
            url = url[:-1].rstrip(_TRAILING)
        host = _host(url)
        on_allowed_domain = host is not None and any(host == d or host.endswith("." + d) for d in allowed)
        if not on_allowed_domain and (host is None or not _cta_allows(controls, host, url)):
            found.append((start, start + len(url), host))
    return found


def _cta_allows(controls: Controls, host: str, url: str) -> bool:
    # A call to action's URL allows exactly that page and what lies under it, not its whole host.
    candidate = url if "://" in url else "https://" + url
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return False
    for cta in controls.calls_to_action:
        if not cta.url:
            continue
        target = urlsplit(cta.url)
        if host == (target.hostname or "") and parts.path.rstrip("/").startswith(target.path.rstrip("/")):
            return True
    return False


def _host(url: str) -> str | None:
    candidate = url if "://" in url else "http://" + url
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        # Malformed ports or brackets: the link cannot be vetted, so it is treated as not allowed.
        return None
    return host.rstrip(".").lower() if host else None


def _remove_spans(sentence: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        out.append(sentence[last:start])
        last = end
    out.append(sentence[last:])
    text = "".join(out)
    text = _MD_EMPTY_LINK.sub(r"\1", text)
    text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACES.sub(" ", text)
    return text.strip()


# -- compiling -----------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return _INVISIBLE.sub("", text.translate(_QUOTES)).casefold()


def _singulars(word: str) -> set[str]:
    forms = {word}
    if word in _IRREGULAR_SINGULAR:
        forms.add(_IRREGULAR_SINGULAR[word])
    # Short words ("bus", "gas", "yes") are left alone: stripping their "s" makes other words.
    if len(word) > 3 and word not in _NO_SINGULAR:
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
        elif word.endswith(("ses", "xes", "zes", "ches", "shes")):
            forms.add(word[:-2])
        if word.endswith("s") and not word.endswith(("ss", "us", "is")):
            forms.add(word[:-1])
    return forms


def _word_pattern(word: str) -> str:
    if not word.isalpha() or len(word) < 3:
        return re.escape(word)
    forms: set[str] = set()
    for singular in _singulars(word):
        forms.update((singular, singular + "s", singular + "es"))
        if singular in _IRREGULAR:
            forms.add(_IRREGULAR[singular])
        if singular.endswith("y") and len(singular) > 1 and singular[-2] not in _VOWELS:
            forms.add(singular[:-1] + "ies")
    # Factor out the shared stem ("cake(?:s|es)?"): the engine then tests one literal per position
    # instead of every form. Longest suffix first so a match reports the whole word.
    stem = _common_prefix(sorted(forms))
    suffixes = sorted((f[len(stem) :] for f in forms if f != stem), key=lambda f: (-len(f), f))
    tail = "(?:" + "|".join(map(re.escape, suffixes)) + ")" if suffixes else ""
    return re.escape(stem) + tail + ("?" if stem in forms and suffixes else "")


def _common_prefix(ordered: list[str]) -> str:
    # In sorted order the first and last strings differ the most, so their prefix is everyone's.
    first, last = ordered[0], ordered[-1]
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _phrase_pattern(phrase: str) -> str | None:
    """The phrase as a regex *without* word boundaries (see :func:`_bounded`)."""
    words = _normalise(phrase).split()
    if not words or not any(re.search(r"\w", w) for w in words):
        return None  # validate() rejects these; skipping keeps the checks total on unvalidated input
    return _JOIN.join(_word_pattern(w) for w in words)


def _claim_pattern(phrase: str) -> str | None:
    """A never-claim phrase as a regex, each word also matching its other words (``CLAIM_SENSES``)."""
    words = _normalise(phrase).split()
    if not words or not any(re.search(r"\w", w) for w in words):
        return None
    parts = []
    for word in words:
        senses = [p for p in map(_phrase_pattern, CLAIM_SENSES.get(word, ())) if p is not None]
        parts.append(
            "(?:" + "|".join([_word_pattern(word), *senses]) + ")" if senses else _word_pattern(word)
        )
    return _JOIN.join(parts)


def _bounded(patterns: list[str]) -> re.Pattern[str]:
    # The boundaries wrap the whole alternation, not each branch: a lookbehind at the head of every
    # branch made a 4,000-keyword document ~70x slower to scan, as the engine re-tested it per branch.
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)")


def _compile(controls: Controls) -> _Matchers:
    topics = []
    all_topic_patterns = []
    for topic in controls.blocked_topics:
        # The creator's keywords, then the everyday words for the subjects the topic names.
        terms = (*topic.keywords, *related_terms(topic))
        patterns = [p for p in map(_phrase_pattern, terms) if p is not None]
        patterns.extend(f"(?:{p})" for p in related_patterns(topic))
        if patterns:
            topics.append((topic, _bounded(patterns)))
            all_topic_patterns.extend(patterns)
    claims = []
    all_claim_patterns = []
    for phrase in controls.never_claim:
        pattern = _claim_pattern(phrase)
        if pattern is not None:
            claims.append((phrase, _bounded([pattern])))
            all_claim_patterns.append(pattern)
    commitments = []
    all_commitment_patterns = []
    for phrase in controls.custom_commitments:
        pattern = _phrase_pattern(phrase)
        if pattern is not None:
            commitments.append((phrase, _bounded([pattern])))
            all_commitment_patterns.append(pattern)
    return _Matchers(
        any_topic=_bounded(all_topic_patterns) if all_topic_patterns else None,
        topics=tuple(topics),
        any_claim=_bounded(all_claim_patterns) if all_claim_patterns else None,
        claims=tuple(claims),
        any_commitment=_bounded(all_commitment_patterns) if all_commitment_patterns else None,
        commitments=tuple(commitments),
    )


def _matchers(controls: Controls) -> _Matchers:
    key = (controls.creator_id, controls.version)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and (hit[0] is controls or hit[0] == controls):
            _cache.move_to_end(key)
            return hit[1]
    # Compile outside the lock: two threads may both compile a new version once; that is harmless.
    matchers = _compile(controls)
    with _cache_lock:
        _cache[key] = (controls, matchers)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return matchers
