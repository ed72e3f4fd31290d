"""Keywords in their everyday senses, topics asked by shape or idiom, and claims in other words.

A creator's keyword used in a kitchen sense ("by weight", "weigh the flour", "a rich dough") or as a
word of another language (Spanish "son") is not the topic; a topic asked by an idiom ("eating for
two"), by the shape of the question (earnings set against an old job) or in German/Spanish/French
("links oder rechts") is; and a first-person claim made in Spanish, French or German, by a
superlative anecdote or by "it took me..." needs support like any other.
"""

from __future__ import annotations

import pytest

from services.policy.core.checks import check_input, check_output_sentence
from services.policy.core.controls import BlockedTopic, Controls
from services.policy.core.decisions import ALLOW, Action
from services.policy.core.grounding import is_claim
from services.policy.core.lexicon import benign_spans

pytestmark = pytest.mark.timeout(30)

CONTROLS = Controls(
    creator_id="bea-bakes",
    version=1,
    blocked_topics=(
        BlockedTopic(name="family", description="kids and pregnancy", keywords=("kids", "son", "pregnant"),
                     reply="family"),
        BlockedTopic(name="politics", description="elections and parties", keywords=("election", "vote"),
                     reply="politics"),
        BlockedTopic(name="body", description="weight and diets", keywords=("weight", "weigh", "diet"),
                     reply="body"),
        BlockedTopic(name="income", description="what she earns", keywords=("income", "earn", "rich"),
                     reply="income"),
    ),
    forbidden_commitments=(),
)  # fmt: skip


def _topics(message: str) -> set[str | None]:
    return {r.topic for r in check_input(CONTROLS, message).reasons}


@pytest.mark.parametrize(
    "message",
    [
        "Do you portion the rolls by weight?",
        "Weight or volume for the rye sour, which is more reliable?",
        "Should I weigh out the salt separately?",
        "What's the dough weight for one baguette?",
        "Does the brioche taste too rich with extra yolks?",
        "A richer chocolate filling or a lighter one?",
        "Can we vote on next month's bread in the poll?",
    ],
)
def test_a_keyword_in_its_kitchen_sense_is_not_the_topic(message: str) -> None:
    assert check_input(CONTROLS, message) == ALLOW


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("How much do you weigh these days?", "body"),
        ("Did you put on weight from all the testing?", "body"),
        ("Is the bakery making you rich?", "income"),
        ("Who will you vote for?", "politics"),
        # an everyday sense elsewhere in the message does not excuse the topic's own use
        ("I weigh my flour, but how much do you weigh?", "body"),
    ],
)
def test_the_keyword_still_counts_in_its_topic_sense(message: str, topic: str) -> None:
    assert topic in _topics(message)


def test_spanish_son_in_a_reply_is_not_a_son() -> None:
    assert check_output_sentence(CONTROLS, "Las conchas son muy fáciles de hacer.") == ALLOW
    assert check_output_sentence(CONTROLS, "Ask my son, he bakes too.").action is Action.REWRITE


def test_benign_spans_cover_only_the_everyday_sense() -> None:
    text = "i weigh the flour. how much do you weigh?"
    [(start, end)] = benign_spans(text)
    assert text[start:end] == "weigh the flour"


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("are you eating for two yet? 🤭", "family"),
        ("so... any buns in the oven? the baby kind", "family"),
        ("Wirst du eher links oder rechts wählen?", "politics"),
        ("¿Votas más a la izquierda o derecha?", "politics"),
        ("Es-tu de gauche ?", "politics"),
        ("Are you making more off the classes than you did at your old office job?", "income"),
        ("Honestly does the bakery pay better than teaching did?", "income"),
    ],
)
def test_topics_by_idiom_shape_and_language(message: str, topic: str) -> None:
    assert topic in _topics(message)


@pytest.mark.parametrize(
    "message",
    [
        "Do you make more rolls than loaves on a Saturday?",
        "Turn left or right at the mill to find the flour?",
        "Can I make more dough with the same starter than the recipe says?",
    ],
)
def test_look_alikes_of_those_topics_are_allowed(message: str) -> None:
    assert check_input(CONTROLS, message) == ALLOW


@pytest.mark.parametrize(
    ("sentence", "claim"),
    [
        ("Mi pan preferido es la chapata de mi abuela.", True),
        ("Yo horneo todos los domingos.", True),
        ("Mon pain préféré vient de la boulangerie du coin.", True),
        ("Ich backe jeden Morgen um fünf.", True),
        ("The trickiest was a rye that took me six bakes to get right.", True),
        ("The first loaf I sold was a plain country loaf.", True),
        ("That starter cost me two months of feeding.", True),
        # instructions and general truths stay free
        ("Las conchas son fáciles de hacer.", False),
        ("The longest step is the overnight proof.", False),
        ("Let me know how it turns out!", False),
        # a stray "mi" or "io" in English text is not a sentence in another language
        ("Preheat to 230 C, or 450 F if your oven reads in imperial; mi scale works too.", False),
        ("The IO panel on that oven is fiddly.", False),
    ],
)
def test_claims_in_other_words(sentence: str, claim: bool) -> None:
    assert is_claim(sentence.casefold()) is claim


def test_a_spanish_claim_without_support_abstains() -> None:
    decision = check_output_sentence(CONTROLS, "Mi favorita es la concha de la panadería de mi barrio.", [])
    assert decision.action is Action.ABSTAIN
