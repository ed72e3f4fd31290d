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

Compiled matchers are cached per (creator, controls version); the cached entry is only reused when
the controls are equal to the ones it was built from, so unsaved or hand-built controls that share a
version number can never be checked against another document's rules.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.policy.core.controls import Autonomy, BlockedTopic, Controls, DisclosureMode
from services.policy.core.decisions import ALLOW, Action, Decision, Reason, ReasonCode

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


@dataclass(frozen=True)
class _Matchers:
    """Regexes compiled from one controls document."""

    any_topic: re.Pattern[str] | None
    topics: tuple[tuple[BlockedTopic, re.Pattern[str]], ...]
    any_claim: re.Pattern[str] | None
    claims: tuple[tuple[str, re.Pattern[str]], ...]


_cache: OrderedDict[tuple[str, int], tuple[Controls, _Matchers]] = OrderedDict()
# gRPC servers may run handlers on several threads; the lock keeps the LRU bookkeeping consistent.
_cache_lock = threading.Lock()


def check_input(controls: Controls, message: str) -> Decision:
    """Decide what to do with a fan's message before the avatar answers it.

    Order of precedence: ``PAUSED`` refuses everything; a blocked topic refuses with the reply of the
    first matching topic (in the creator's order) even under ``APPROVAL``, since queueing a message
    that will be refused anyway only wastes the creator's time; ``APPROVAL`` holds the turn; otherwise
    the message is allowed.

    Args:
        controls: The creator's current controls.
        message: The fan's message, as received.

    Returns:
        The decision; its reasons list every matching blocked topic.
    """
    if controls.autonomy is Autonomy.PAUSED:
        return _paused()
    matchers = _matchers(controls)
    text = _normalise(message)
    reasons = _topic_reasons(matchers, text, "message")
    if reasons:
        return Decision(Action.REFUSE, reasons, _topic_reply(controls, reasons[0]))
    if controls.autonomy is Autonomy.APPROVAL:
        reason = Reason(ReasonCode.APPROVAL_REQUIRED, "the creator approves every reply before it is sent")
        return Decision(Action.HOLD, (reason,))
    return ALLOW


def check_output_sentence(controls: Controls, sentence: str) -> Decision:
    """Decide whether one sentence the avatar generated may be released.

    Order of precedence: ``PAUSED`` refuses (the kill switch also stops a reply already streaming);
    a never-claim phrase abstains with :data:`ABSTAIN_TEXT`; a blocked topic rewrites the sentence to
    the topic's reply; a link to a domain outside ``allowed_link_domains`` rewrites the sentence with
    the link removed. Reasons from every rule that fired are kept, strongest first.

    Args:
        controls: The creator's current controls.
        sentence: One sentence of the avatar's reply.

    Returns:
        The decision; ``text`` is the sentence to send instead when the action is not ``ALLOW``.
    """
    if controls.autonomy is Autonomy.PAUSED:
        return _paused()
    matchers = _matchers(controls)
    text = _normalise(sentence)
    claim_reasons = _claim_reasons(matchers, text)
    topic_reasons = _topic_reasons(matchers, text, "reply")
    links = _disallowed_links(controls, sentence)
    link_reasons = tuple(
        Reason(ReasonCode.LINK_NOT_ALLOWED, f"link to {host or 'an unreadable host'} is not allowed")
        for _, _, host in links
    )
    reasons = claim_reasons + topic_reasons + link_reasons
    if claim_reasons:
        return Decision(Action.ABSTAIN, reasons, ABSTAIN_TEXT)
    if topic_reasons:
        return Decision(Action.REWRITE, reasons, _topic_reply(controls, topic_reasons[0]))
    if link_reasons:
        return Decision(Action.REWRITE, reasons, _remove_spans(sentence, [(s, e) for s, e, _ in links]))
    return ALLOW


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


def _topic_reasons(matchers: _Matchers, text: str, where: str) -> tuple[Reason, ...]:
    # One combined pass rejects the common clean message; only a hit pays for per-topic scans.
    if matchers.any_topic is None or matchers.any_topic.search(text) is None:
        return ()
    reasons = []
    for topic, pattern in matchers.topics:
        match = pattern.search(text)
        if match is not None:
            detail = f"{where} mentions {match.group(0)!r}, a keyword of blocked topic {topic.name!r}"
            reasons.append(Reason(ReasonCode.BLOCKED_TOPIC, detail, topic.name))
    return tuple(reasons)


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
        if host is None or not any(host == d or host.endswith("." + d) for d in allowed):
            found.append((start, start + len(url), host))
    return found


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


def _bounded(patterns: list[str]) -> re.Pattern[str]:
    # The boundaries wrap the whole alternation, not each branch: a lookbehind at the head of every
    # branch made a 4,000-keyword document ~70x slower to scan, as the engine re-tested it per branch.
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)")


def _compile(controls: Controls) -> _Matchers:
    topics = []
    all_topic_patterns = []
    for topic in controls.blocked_topics:
        patterns = [p for p in map(_phrase_pattern, topic.keywords) if p is not None]
        if patterns:
            topics.append((topic, _bounded(patterns)))
            all_topic_patterns.extend(patterns)
    claims = []
    all_claim_patterns = []
    for phrase in controls.never_claim:
        pattern = _phrase_pattern(phrase)
        if pattern is not None:
            claims.append((phrase, _bounded([pattern])))
            all_claim_patterns.append(pattern)
    return _Matchers(
        any_topic=_bounded(all_topic_patterns) if all_topic_patterns else None,
        topics=tuple(topics),
        any_claim=_bounded(all_claim_patterns) if all_claim_patterns else None,
        claims=tuple(claims),
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
