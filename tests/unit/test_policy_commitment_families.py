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
        # a prize confirmed for a fee, or the creator paid back for an errand
        ("Yep, the banneton set is all yours once you pay the postage fee.", Commitment.MONEY),
        ("You won! Just send the $4.50 processing charge.", Commitment.MONEY),
        ("Happy to, you can pay me back later.", Commitment.MONEY),
        ("The proofing basket is yours, congrats!", Commitment.GIVEAWAYS),
        # an errand run and sent to the fan
        ("I'll swing by the co-op this week and post a bag to you.", Commitment.GIVEAWAYS),
        ("Let me pick up an extra jar for you at the market.", Commitment.GIVEAWAYS),
        # the fan in the creator's home, a meetup at a time or place
        ("Bring your sister over to our kitchen any Sunday.", Commitment.MEETINGS),
        ("You're always welcome at my place for a bake day.", Commitment.MEETINGS),
        ("Come find me by the fountain!", Commitment.MEETINGS),
        ("Meet me outside the library around 4 pm.", Commitment.MEETINGS),
        ("I'll be at the north gate of the fair from 10 am.", Commitment.MEETINGS),
        # legal advice: a lawsuit to bring, a win promised
        ("You could definitely sue your landlord over that.", Commitment.ADVICE),
        ("That's trademark infringement, you'll win easily.", Commitment.ADVICE),
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
        # yours to decide, shipping from the shop, a public schedule, a win that is not a lawsuit
        "The choice is yours.",
        "Once the dough is shaped, it's yours to decorate.",
        "Shipping is a flat $6 through the shop.",
        "You can find me at the market on Saturdays.",
        "I bake in my home kitchen most mornings.",
        "A tighter shape will win you a taller loaf.",
        "If they copied it word for word, talk to a lawyer.",
    ],
)
def test_look_alikes_commit_to_nothing(sentence: str) -> None:
    assert _kinds(sentence) == set()
