"""Whole families of forbidden commitments, in wordings no rule spells out, and their look-alikes.

Payments outside the shop (a payment app, a handle, an agreed price), attending the fan's event,
a postal address, changing a medication, and a diagnosis with its treatment.
"""

from __future__ import annotations

import pytest

from services.policy.core.commitments import find_commitments
from services.policy.core.controls import Commitment

pytestmark = pytest.mark.timeout(30)


def _kinds(sentence: str) -> set[Commitment]:
    return {kind for kind, _ in find_commitments(sentence.casefold(), list(Commitment))}


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        # payment outside the shop
        ("Just PayPal the €30 to me and I'll post it.", Commitment.MONEY),
        ("Zelle it to crumbqueen and it's yours.", Commitment.MONEY),
        ("Send the money to @loafandco on Venmo.", Commitment.MONEY),
        ("My cashtag is $LoafLady if that's easier.", Commitment.MONEY),
        # a price agreed or negotiated
        ("Okay, $90 for the three loaves works for me.", Commitment.MONEY),
        ("Deal! I'll bake them Friday.", Commitment.MONEY),
        ("You've got yourself a deal.", Commitment.MONEY),
        ("I could do it for 75 dollars if you pick it up.", Commitment.MONEY),
        # attending the fan's event, being there for them
        ("I'd love to come to your daughter's party on Sunday!", Commitment.MEETINGS),
        ("Count me in for the bake sale.", Commitment.MEETINGS),
        ("We'll be there at noon to cheer you on.", Commitment.MEETINGS),
        ("I can join you at the market stall on the 3rd.", Commitment.MEETINGS),
        ("I'd love to come!", Commitment.MEETINGS),
        # a postal address
        ("Ship it to 77 North Oracle Road, Tucson.", Commitment.CONTACT),
        ("It's 210 W Elm St, Phoenix, AZ 85004.", Commitment.CONTACT),
        ("Send it to PO Box 4411 and I'll pick it up.", Commitment.CONTACT),
        # starting, stopping or swapping a medication
        ("You could skip the lisinopril on baking days.", Commitment.ADVICE),
        ("Honestly you can come off the atorvastatin if you eat rye.", Commitment.ADVICE),
        ("Eat a slice instead of taking your insulin.", Commitment.ADVICE),
        ("You don't need your inhaler around flour dust.", Commitment.ADVICE),
        # a diagnosis, and the treatment after it
        ("Sounds like a wheat allergy to me.", Commitment.ADVICE),
        ("That's probably gastritis, so try some antacids.", Commitment.ADVICE),
        ("You likely have a lactose intolerance; just take lactase pills.", Commitment.ADVICE),
    ],
)
def test_each_family_is_a_commitment(sentence: str, kind: Commitment) -> None:
    assert kind in _kinds(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        # prices, the shop, and deals that are not agreed with the fan
        "The zine is $18 and the starter flakes are $12.",
        "Flour went up to $9 a bag, no big deal.",
        "I pay about $4 a kilo for rye at the co-op.",
        "Use a cast iron pot if you don't have a Dutch oven.",
        "It's wise to feed her twice a day in summer.",
        "The shop takes PayPal, cards and Apple Pay.",
        # the creator's own schedule, or coming back to a topic
        "I'll be at the Tucson market every Saturday morning.",
        "I'll come back to rye in the next video.",
        "Spring always comes early in Tucson.",
        # addresses that are not addresses
        "Bake it 45 minutes then rest it 2 hours.",
        "It's a 10 minute drive from my place to the mill.",
        "Mix 500 grams of flour with 350 grams of water.",
        "I met 3 bakers in St Paul last year.",
        "I always pack 2 rolls for the road.",
        # medication and health mentioned without advice
        "Please don't stop your metformin without asking your doctor.",
        "Ask your doctor before you swap any medication for a diet change.",
        "I'm not a doctor, so I can't say whether that sounds like IBS.",
        "The starter sounds like it needs a feed.",
        "Take the loaf out when it sounds hollow.",
    ],
)
def test_look_alikes_commit_to_nothing(sentence: str) -> None:
    assert _kinds(sentence) == set()
