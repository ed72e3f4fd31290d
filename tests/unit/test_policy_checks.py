"""Policy core: controls validation and JSON, input/output checks, disclosure timing."""

from __future__ import annotations

import dataclasses
import re
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.policy.core.checks import (
    ABSTAIN_TEXT,
    PAUSED_TEXT,
    check_input,
    check_output_sentence,
    needs_disclosure,
)
from services.policy.core.controls import (
    Autonomy,
    BlockedTopic,
    Controls,
    DisclosureMode,
    InvalidControls,
)
from services.policy.core.decisions import ALLOW, Action, Decision, Reason
from services.policy.core.lexicon import related_terms

FAMILY_REPLY = "I keep my family life private."
BAKING_REPLY = "No baking talk here, sorry!"


def make_controls(**changes: object) -> Controls:
    """Controls for a food creator who keeps family private and never promises giveaways."""
    base = Controls(
        creator_id="chef-ana",
        version=3,
        blocked_topics=(
            BlockedTopic(
                name="family",
                description="my kids, my partner, where we live",
                keywords=("kids", "child", "school district", "wife"),
                examples=("Do your kids go to school nearby?",),
                reply=FAMILY_REPLY,
            ),
            BlockedTopic(name="baking", keywords=("cake", "party", "box"), reply=BAKING_REPLY),
        ),
        never_claim=("I have a child", "give away"),
        allowed_link_domains=("chefana.com", "youtube.com"),
        # The rules below predate forbidden commitments; test_policy_controls_v2.py covers those.
        forbidden_commitments=(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


CONTROLS = make_controls()
ALL_KEYWORDS = [k for t in CONTROLS.blocked_topics for k in t.keywords]


# -- input -------------------------------------------------------------------------------------


def test_clean_message_is_allowed() -> None:
    assert check_input(CONTROLS, "What's your favourite pasta shape?") == ALLOW


def test_blocked_topic_refuses_with_the_topic_reply() -> None:
    decision = check_input(CONTROLS, "Do your KIDS like pasta?")
    assert decision == Decision(
        Action.REFUSE,
        (Reason("blocked_topic", "message mentions 'kids', a keyword of blocked topic 'family'", "family"),),
        FAMILY_REPLY,
    )


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("does your kid love it", "family"),  # keyword "kids" also matches the singular
        ("one child", "family"),
        ("your children?", "family"),  # irregular plural
        ("wives", "family"),
        ("the School-District rules", "family"),  # phrase joined by a hyphen
        ("schooldistrict", "family"),  # ...or by nothing
        ("school\n  district", "family"),
        ("two cakes please", "baking"),
        ("birthday parties", "baking"),
        ("cake boxes", "baking"),
        ("#cake", "baking"),
        ("the cake's frosting", "baking"),
        ("CAKE!", "baking"),
        ("ｃａｋｅ", "baking"),  # fullwidth letters are NFKC-normalised
        ("ca\u200bke", "baking"),  # a zero-width space does not split a keyword
    ],
)
def test_keyword_variants_match(message: str, topic: str) -> None:
    decision = check_input(CONTROLS, message)
    assert decision.action is Action.REFUSE
    assert [r.topic for r in decision.reasons] == [topic]


@pytest.mark.parametrize(
    "message",
    ["what a cakewalk", "pancakes for breakfast", "just kidding", "kidnapped twist", "childhood", "boxing"],
)
def test_keywords_match_whole_words_only(message: str) -> None:
    # Decided: a keyword never matches inside a longer word ("cake" is not "cakewalk" or "pancake"),
    # and only plural forms are tolerated ("kid" is not "kidding").
    assert check_input(CONTROLS, message) == ALLOW


def test_every_matching_topic_is_a_reason_and_the_first_in_creator_order_replies() -> None:
    decision = check_input(CONTROLS, "a cake for the kids")
    assert decision.action is Action.REFUSE
    assert [r.topic for r in decision.reasons] == ["family", "baking"]
    assert decision.text == FAMILY_REPLY


def test_paused_refuses_everything_first() -> None:
    paused = make_controls(autonomy=Autonomy.PAUSED)
    for message in ["hi!", "do your kids bake cakes?", ""]:
        decision = check_input(paused, message)
        assert decision.action is Action.REFUSE
        assert decision.codes == ("autonomy_paused",)
        assert decision.text == PAUSED_TEXT


def test_approval_holds_clean_messages_but_still_refuses_blocked_topics() -> None:
    approval = make_controls(autonomy=Autonomy.APPROVAL)
    held = check_input(approval, "favourite pasta?")
    assert held.action is Action.HOLD
    assert held.codes == ("approval_required",)
    assert held.text is None
    assert check_input(approval, "your kids?").action is Action.REFUSE


# -- output ------------------------------------------------------------------------------------


def test_clean_sentence_is_allowed() -> None:
    assert check_output_sentence(CONTROLS, "I love fresh basil in summer.") == ALLOW


def test_blocked_topic_in_a_reply_is_rewritten() -> None:
    decision = check_output_sentence(CONTROLS, "My kids help me cook on Sundays.")
    assert decision.action is Action.REWRITE
    assert decision.codes == ("blocked_topic",)
    assert decision.text == FAMILY_REPLY


def test_never_claim_abstains() -> None:
    decision = check_output_sentence(CONTROLS, "As a mom, I have a child in the local school.")
    assert decision == Decision(
        Action.ABSTAIN,
        (
            Reason("never_claim", "reply claims 'I have a child', which the creator never wants said"),
            Reason("blocked_topic", "reply mentions 'child', a keyword of blocked topic 'family'", "family"),
        ),
        ABSTAIN_TEXT,
    )


def test_never_claim_phrase_variants() -> None:
    for sentence in ["I'll give-away a camera!", "Giveaway time: a free camera", "we GIVE AWAY boxes"]:
        decision = check_output_sentence(CONTROLS, sentence)
        assert decision.action is Action.ABSTAIN, sentence
        assert decision.codes[0] == "never_claim"


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Grab it at https://evil.io/deal.", "Grab it at."),
        ("See www.evil.io/x and chefana.com/recipes!", "See and chefana.com/recipes!"),
        ("Recipe: [here](https://evil.io/r) today", "Recipe: here today"),
        ("Go to shop.evil.io now", "Go to now"),
        ("Go to evil.io:8080/deal now", "Go to now"),
        ("Visit https://chefana.com@evil.io/x please", "Visit please"),  # userinfo trick: host is evil.io
        ("Visit https://chefana.com.evil.io/", "Visit"),
        ("Visit https://notchefana.com/", "Visit"),
    ],
)
def test_disallowed_links_are_removed(sentence: str, expected: str) -> None:
    decision = check_output_sentence(CONTROLS, sentence)
    assert decision.action is Action.REWRITE
    assert set(decision.codes) == {"link_not_allowed"}
    assert decision.text == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "Full recipe on https://chefana.com/pasta.",
        "Watch it: https://www.youtube.com/watch?v=abc",
        "shop.chefana.com has aprons",
        "HTTPS://CHEFANA.COM/Recipes",
        "I use Node.js and e.g. vue for the site",  # not links
        "mail me at ana@evil.io",  # an address, not a link
    ],
)
def test_allowed_links_and_non_links_pass(sentence: str) -> None:
    assert check_output_sentence(CONTROLS, sentence) == ALLOW


def test_no_links_are_allowed_by_default() -> None:
    decision = check_output_sentence(Controls.default("c"), "see https://chefana.com")
    assert decision.action is Action.REWRITE
    assert decision.text == "see"


def test_output_precedence_claim_then_topic_then_link() -> None:
    topic_and_link = check_output_sentence(CONTROLS, "Cake pics at https://evil.io")
    assert topic_and_link.action is Action.REWRITE
    assert topic_and_link.codes == ("blocked_topic", "link_not_allowed")
    assert topic_and_link.text == BAKING_REPLY
    everything = check_output_sentence(CONTROLS, "I have a child and a cake, see https://evil.io")
    assert everything.action is Action.ABSTAIN
    assert everything.codes == ("never_claim", "blocked_topic", "blocked_topic", "link_not_allowed")


def test_paused_stops_output_too() -> None:
    # The kill switch must also stop a reply that was already streaming when it was flipped.
    decision = check_output_sentence(make_controls(autonomy=Autonomy.PAUSED), "Basil is great.")
    assert decision.action is Action.REFUSE
    assert decision.codes == ("autonomy_paused",)


def test_cache_never_mixes_controls_that_share_a_version() -> None:
    first = make_controls()
    assert check_input(first, "cake?").action is Action.REFUSE
    edited = make_controls(blocked_topics=())  # same creator and version, different rules
    assert check_input(edited, "cake?") == ALLOW
    assert check_input(first, "cake?").action is Action.REFUSE


def test_checks_are_fast_on_long_adversarial_text() -> None:
    nasty = ("a." * 5000) + ("x-" * 5000) + "http://" + ("a" * 10_000) + " cakewalk " * 1000
    started = time.perf_counter()
    check_input(CONTROLS, nasty)
    check_output_sentence(CONTROLS, nasty)
    assert time.perf_counter() - started < 1.0


# -- disclosure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "first", "minutes", "expected"),
    [
        (DisclosureMode.FIRST_MESSAGE, True, None, True),
        (DisclosureMode.FIRST_MESSAGE, False, 10_000.0, False),
        (DisclosureMode.ALWAYS, False, 0.5, True),
        (DisclosureMode.AFTER_GAP, True, 0.0, True),
        (DisclosureMode.AFTER_GAP, False, 29.9, False),
        (DisclosureMode.AFTER_GAP, False, 30.0, True),
        (DisclosureMode.AFTER_GAP, False, None, True),  # unknown gap: disclose
        (DisclosureMode.AFTER_GAP, False, float("nan"), True),
        (DisclosureMode.AFTER_GAP, False, -5.0, False),  # clock skew is not a gap
    ],
)
def test_needs_disclosure(mode: DisclosureMode, first: bool, minutes: float | None, expected: bool) -> None:
    controls = make_controls(disclosure_mode=mode, disclosure_gap_minutes=30)
    assert needs_disclosure(controls, first, minutes) is expected


# -- controls ----------------------------------------------------------------------------------


def test_defaults_are_safe_and_valid() -> None:
    controls = Controls.default("c1").validate()
    assert controls.version == 0
    assert controls.autonomy is Autonomy.AUTO
    assert controls.disclosure_mode is DisclosureMode.FIRST_MESSAGE
    assert controls.allowed_link_domains == ()
    assert controls.render_disclosure("Ana") == "I'm Ana's AI avatar — replies are generated by AI."


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"creator_id": ""}, "creator_id must not be empty"),
        ({"blocked_topics": (BlockedTopic(name="  "),)}, r"blocked_topics\[0\]\.name must not be empty"),
        (
            {"blocked_topics": (BlockedTopic(name="Family"), BlockedTopic(name="family "))},
            r"blocked_topics\[1\]\.name 'family ' duplicates blocked_topics\[0\]",
        ),
        ({"blocked_topics": (BlockedTopic(name="x" * 65),)}, r"name is 65 characters long; the limit is 64"),
        ({"blocked_topics": (BlockedTopic(name="x", keywords=("ok", "")),)}, r"keywords\[1\] must not be"),
        ({"blocked_topics": (BlockedTopic(name="x", keywords=("?!",)),)}, "must contain a letter or digit"),
        ({"blocked_topics": (BlockedTopic(name="x", reply=""),)}, r"reply must not be empty"),
        ({"disclosure_text": "y" * 501}, "disclosure_text is 501 characters long; the limit is 500"),
        ({"disclosure_text": "{creator}'s bot"}, r"only use the placeholder \{name\}"),
        ({"disclosure_text": "{name.__class__}"}, r"only use the placeholder \{name\}"),
        ({"disclosure_gap_minutes": 0}, "disclosure_gap_minutes must be an integer from 1"),
        ({"disclosure_gap_minutes": 10**9}, "disclosure_gap_minutes must be an integer from 1"),
        ({"never_claim": ("",)}, r"never_claim\[0\] must not be empty"),
        ({"allowed_link_domains": ("https://x.com",)}, r"allowed_link_domains\[0\] must be a bare lowercase"),
        ({"allowed_link_domains": ("X.com",)}, "bare lowercase host"),
        ({"blocked_topics": [BlockedTopic(name="x")]}, "blocked_topics must be a tuple"),
    ],
)
def test_invalid_controls_are_rejected_with_a_clear_message(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidControls, match=message):
        make_controls(**changes).validate()


def test_json_round_trip() -> None:
    controls = make_controls(
        autonomy=Autonomy.APPROVAL,
        disclosure_mode=DisclosureMode.AFTER_GAP,
        disclosure_gap_minutes=45,
        stated_facts=("I grew up in Naples.",),
    )
    text = controls.to_json()
    assert Controls.from_json(text) == controls
    assert Controls.from_json(text.encode()) == controls
    assert Controls.from_document(controls.to_document()) == controls


def test_json_with_missing_optional_keys_takes_defaults() -> None:
    assert Controls.from_json('{"creator_id": "c1"}') == Controls.default("c1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "must be an object"),
        ('{"creator_id": "c", "blocked_topic": []}', "unknown keys: blocked_topic"),
        ('{"creator_id": "c", "autonomy": "yolo"}', "autonomy must be one of auto, approval, paused"),
        ('{"creator_id": "c", "version": "2"}', "version must be an integer"),
        ('{"creator_id": "c", "schema": 99}', "unsupported controls document schema"),
        ('{"creator_id": "c", "never_claim": [1]}', "never_claim must be a list of strings"),
        ('{"creator_id": "c", "blocked_topics": [{"reply": "x"}]}', r"blocked_topics\[0\] needs a name"),
        ('{"version": 1}', "needs creator_id"),
    ],
)
def test_bad_json_is_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidControls, match=message):
        Controls.from_json(text)


# -- properties --------------------------------------------------------------------------------

# The keywords' stems, and the first four letters of every word of the related terms the topics
# trigger (see lexicon.py: the family topic also matches "toddler", "little ones"...); every
# term has a word of three letters or more, so text without any of these stems has no term.
_RELATED_STEMS = sorted(
    {w[:4] for t in CONTROLS.blocked_topics for p in related_terms(t) for w in p.split() if len(w) >= 3}
)
_KEYWORD_FORMS = re.compile(
    "|".join(
        [
            "kid",
            "child",
            "school",
            "district",
            "wife",
            "wive",
            "cake",
            "part",
            "box",
            *map(re.escape, _RELATED_STEMS),
        ]
    ),
    re.IGNORECASE,
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_check_input_never_raises_and_allows_text_without_keywords(message: str) -> None:
    decision = check_input(CONTROLS, message)
    assert decision.action in (Action.ALLOW, Action.REFUSE)
    # Any text that does not even contain a keyword stem (after normalisation) must be allowed.
    # (A chat template's special token, such as "<|0|>", is an injection whatever the words.)
    folded = unicodedata.normalize("NFKC", message).casefold()
    unkeyworded = not _KEYWORD_FORMS.search(re.sub(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]", "", folded))
    if unkeyworded and decision.codes != ("prompt_injection",):
        assert decision == ALLOW


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["pasta", "basil", "why", "ok", "cakewalk", "kidding", "boxing"]), max_size=12),
    st.sampled_from([" ", ", ", "! ", "\n", " - "]),
)
def test_safe_vocabulary_is_always_allowed(words: list[str], sep: str) -> None:
    assert check_input(CONTROLS, sep.join(words)) == ALLOW


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(ALL_KEYWORDS),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from([" ", "\n", "(", "#", "¡", '"']),
)
def test_a_delimited_keyword_is_always_refused(before: str, keyword: str, after: str, delim: str) -> None:
    message = f"{before}{delim}{keyword.upper()}{delim}{after}"
    assert check_input(CONTROLS, message).action is Action.REFUSE


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_check_output_sentence_never_raises(sentence: str) -> None:
    decision = check_output_sentence(CONTROLS, sentence)
    assert (decision.action is Action.ALLOW) == (decision.text is None)
