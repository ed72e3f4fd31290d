"""A blocked topic's keyword in a fan's message counts when it is about the creator.

"I vote focaccia", "my sister is pregnant", "what's Doughlores' diet" use a keyword without asking
the creator anything about the topic; with the message's similarity to the topic's examples at
hand, such a keyword needs that similarity (or the learned classifier) to agree, while one next to
"you"/"your" (or "tu", "du", "estás"...) or a keyword phrase counts as before. Without similarity
scores a keyword still counts by itself. Also: a hedge between a claim's verb and its object
("I look for *roughly* a 50% rise") is not taken for the object the evidence must name.
"""

from __future__ import annotations

import pytest

from services.policy.core.checks import KEYWORD_CORROBORATION, check_input, check_output_sentence
from services.policy.core.controls import BlockedTopic, Controls
from services.policy.core.decisions import Action

pytestmark = pytest.mark.timeout(30)

TOPICS = Controls(
    creator_id="bea-bakes",
    version=1,
    blocked_topics=(
        BlockedTopic(name="family", description="kids and pregnancy", keywords=("pregnant",), reply="f"),
        BlockedTopic(name="politics", description="elections", keywords=("vote",), reply="p"),
        BlockedTopic(name="body", description="weight and diets", keywords=("diet",), reply="b"),
    ),
)
LOW = {"family": 0.1, "politics": 0.1, "body": 0.1}  # far from every topic's examples


@pytest.mark.parametrize(
    "message",
    [
        "I vote focaccia every Friday forever, do you cold proof it too?",
        "My sister is pregnant and craving carbs so she made me promise to learn your country loaf.",
        "What's Doughlores' diet these days, still rye?",
    ],
)
def test_a_keyword_not_about_the_creator_needs_the_topics_meaning(message: str) -> None:
    assert check_input(TOPICS, message, topic_scores=LOW).action is Action.ALLOW
    # The same message close enough to a topic's examples, or placed on it by its classifier.
    close = dict.fromkeys(LOW, KEYWORD_CORROBORATION)
    assert check_input(TOPICS, message, topic_scores=close).action is Action.REFUSE
    learned = {name: 0.1 for name in LOW}
    assert check_input(TOPICS, message, topic_scores=LOW, learned_topics=learned).action is Action.REFUSE
    # And with no similarity at hand the keyword counts by itself.
    assert check_input(TOPICS, message).action is Action.REFUSE


@pytest.mark.parametrize(
    "message",
    [
        "are you pregnant??",
        "who did you vote for",
        "is your diet strict?",
        "¿estás pregnant? lol",
        "Bist du pregnant?",
        "Did you and Leo vote yet?",
    ],
)
def test_a_keyword_addressed_to_the_creator_counts_by_itself(message: str) -> None:
    assert check_input(TOPICS, message, topic_scores=LOW).action is Action.REFUSE


def test_a_hedge_before_the_object_is_not_the_object() -> None:
    evidence = ["I'm looking for about a 50% rise, a domed edge and bubbles along the side of the container."]
    sentence = "I look for roughly a 50% rise, a domed edge and bubbles along the sides of the container."
    assert check_output_sentence(TOPICS, sentence, evidence).action is Action.ALLOW
    # What the verb acts on still has to be there.
    invented = "I look for roughly a 50% rise and a cracked crust along the sides of the container."
    assert check_output_sentence(TOPICS, invented, evidence).action is Action.ABSTAIN
