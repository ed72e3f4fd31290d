"""Grounding: a first-person factual claim about the creator must rest on what the creator said.

A reply sentence is a *claim* when it states a fact about the creator's life in the first person:
"I live in Tucson", "I've been baking for ten years", "my husband is a chef", "we have two dogs".
Any other first-person statement of what the creator does or did ("I served in the army", "I run
five miles every morning") is a claim too, and so are an anecdote told through what something
cost or taught the creator ("it took me nine tries"), a superlative in the past ("the hardest
was...") and the first person in Spanish, Portuguese, French, German or Italian ("mi favorito
es..."). Opinions, feelings, offers and questions ("I love rye", "I'd say...", "Do you...?") are
not claims.

A claim is *supported* when most of its content words, every number in it and the verb that
states it occur in the evidence retrieved for the turn or in the creator's stated facts; a name
the evidence shares (her starter, his cat) says who the claim is about, not what it claims, so it
does not count towards that majority. The comparison is lexical on
purpose: it runs on every sentence of every reply inside a 10 ms budget, and words are what a
hallucinated detail changes ("two kids" vs "three kids"; "Tucson" vs "Phoenix").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.language import capitalises_nouns, english_gloss, in_other_language

SUPPORT_THRESHOLD = 0.6
"""Share of a claim's content words that must appear in the evidence."""
OTHER_LANGUAGE_SUPPORT = 0.75
"""The same share for a claim in another language, judged by its word-by-word English gloss: the
gloss is rough (a word with two senses, a form the glossary lacks), so more of it must be found."""

_CLAIM = re.compile(
    r"""
    \b(?:i|we)\s*(?:'ve|have|had|'d\s+been|own|owned)\s+(?!to\b|no\s+idea|never\s+(?:shared|said|talked)|not\s+(?:shared|said)|
        (?:a\s+)?(?:question|feeling|thought|hunch|favou?rite|soft\s+spot|love)\b|been\s+(?:wondering|thinking|meaning)|fun\b)
  | \b(?:i|we)\s*(?:'m|am|was|were|'re|are)\s+(?:(?:also|still|now|currently|originally|actually|really)\s+)?
        (?:on|in|at|featured|interviewed|named|nominated|awarded|invited|a|an|the|married|single|divorced|engaged|pregnant|born|from|based|raised|\d+|living|working|
           studying|moving|trained|certified|allergic|vegan|vegetarian|gluten|celiac|diabetic|retired|
           graduated|employed|located|head|owner|founder|member|parent|mom|mum|dad|father|mother)\b
  | \b(?:i|we)\s+(?:(?:also|still|actually|originally|usually|always|once|recently|just)\s+)?
        (?:live|lived|grew\s+up|moved|work|worked|studied|graduated|went\s+to|attended|own|owned|bought|
           sold|opened|founded|started|run|ran|drive|drove|teach|taught|use|used|bake|baked|cook|cooked|
           won|married|met|visited|travel(?:l)?ed|wrote|published|trained|competed|got|keep|kept|feed|
           fed|learned|learnt|adopted|rent|rented|came\s+from|was\s+born|spent|quit|left|joined|
           became|built|earn|earned|make|made|grow|grew|raise|raised|speak|spoke|play|played|go|
           drink|drank|eat|ate|take|took|spend|watch|watched|read|listen|listened|sing|sang|paint|
           painted|collect|volunteer|volunteered|attend|belong|belonged|celebrate|celebrated)\b
  | \b(?:my|our)\s+(?:[\w'-]+\s+){0,2}?(?:is|are|was|were|has|have|had|lives?|works?|goes|went|called|named|
        turned|turns|loves?|comes?|came|got)\b
  | \b(?:my|our)\s+(?:(?:two|three|four|five|\d+|little|older|younger|eldest|oldest|youngest|twin|
        whole|entire|extended|big|own|dear|late|sweet|lovely)\s+)?
        (?:husband|wife|partner|boyfriend|girlfriend|fianc[eé]e?|hubby|hubbie|hubs|wifey|missus|spouse|bf|gf|
        other\s+half|better\s+half|significant\s+other|kids?|children|child|sons?|daughters?|
        mom|mum|mother|dad|father|parents|brother|sister|siblings?|grandkids|grandchildren|grandson|
        granddaughter|grandma|grandpa|grandmother|grandfather|niece|nephew|cousin|aunt|uncle|in-laws|ex|
        abuela|abuelo|abuelita|abuelito|nana|nonna|nonno|oma|opa|mamá|papá|tía|tío|avó|avô|mémé|pépé|
        little\s+ones?|kiddos?|toddlers?|[a-z0-9]+-year-olds?|newborns?|infants?|twins|stepkids|stepchildren|stepsons?|stepdaughters?|
        family|dog|cat|pets?|house|home|apartment|car|hometown|school|degree|job|salary|age|birthday)\b
  | \bi\s*'?m\s+(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|
        fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty)\b
  | \b(?:i|we)\s*(?:'m|am|'re|are|were|was)\s+(?:\w+\s+)?expecting(?:\s+(?:a|an|our|my|another|twins|baby|
        in|this|next|again|soon)\b|\s*(?:[!.,;]|$))
  | \b(?:i|we)\s+(?:(?:also|still|usually|always|now)\s+)?do\s+(?:a|an|the|my|our|weekly|daily|monthly|yearly|
        regular|regularly|some|most|all|two|three|\d+)\b
  | \bbeing\s+(?:a\s+)?(?:mom|mum|mother|dad|father|parent|wife|husband|stepmom|stepdad|mama|mommy|momma|mamá|
        daddy|papa|papá|mother\s+of|mom\s+of|dad\s+of|boy\s+mom|girl\s+mom|twin\s+mom)\b
  | \bthe\s+(?:hubs|hubby|hubbie|wifey|missus|husband|wife|other\s+half|better\s+half|fianc[eé]e?)\b
  | \b(?:he|she)\s*(?:'s|is|was|works\s+as|worked\s+as|used\s+to\s+be|trained\s+as)\s+(?:a|an)\s+
        (?:[a-z]+(?:er|or|ist|ian|ant|ent|eer)|nurse|chef|cook|architect|pilot|vet|student|firefighter|medic|
        paramedic|barista|mechanic)\b(?<!\bfan)(?<!\bbetter)(?<!\bwinner)(?<!\bkeeper)(?<!\bother)
  | \b(?:the|our)\s+(?:new\s+)?(?:baby|babies|twins|little\s+ones?|kids|kiddos)\s+(?:is|are|was|were|
        's|turns?|turned|starts?|started|goes|go|went|arrived|came|comes|due|love|loves|loved)\b
  | \b(?:baby|babies|twins)\s+(?:number\s+\w+\s+|no\.?\s*\d+\s+|\#\d+\s+)?(?:(?:is|are|'s)\s+)?
        (?:due|arriv\w*|on\s+the\s+way|coming\s+(?:in|this|next|soon)|expected)\b
  | \b(?:took|cost|taught|gave|earned|won|brought|got)\s+(?:me|us)\b
  | \bthe\s+(?:[a-z]{3,}est|most\s+[a-z]+|least\s+[a-z]+|first|last|best|worst)\s+(?:[\w'-]+\s+){0,3}?
        (?:was|were)\b
  | \b(?:top|head|first|number\s+one|no\.?\s*1)\s+(?:of|on)\s+(?:my|our)\s+(?:[\w'-]+\s+){0,2}?list\b
  | \b(?:tops?|topped|heads?|headed|leads?|led)\s+(?:my|our)\s+(?:[\w'-]+\s+){0,2}?(?:list|ranking|rankings)\b
  | \b(?:is|are|was|were|'s|'re|remains?|stays?|would\s+be|will\s+always\s+be)\s+(?:\w+\s+){0,2}?(?:my|our)\s+
        (?:(?:all-time|absolute|personal|current|forever|total|top|number\s+one|ultimate|go-to)\s+)*
        (?:favou?rites?|fave|fav|go-to|pick|top\s+pick|dream\s+\w+|number\s+one|bucket\s+list|wish\s+list)\b
    """,
    re.VERBOSE,
)
# A professional credential claimed in the first person ("As a physician, I can tell you...", "I'm a
# registered dietitian"): the credential itself must be in the evidence, however well the rest of
# the sentence is covered, since it is what makes the advice sound authoritative.
_CREDENTIAL = re.compile(
    r"\b(?:as|i'm|i am|i was|i've been|i have been|i work as|i worked as|i trained as|speaking as)\s+"
    r"(?:an?\s+)?(?:(?:former|licensed|registered|certified|qualified|practicing|practising|board-certified|"
    r"trained|professional|medical|clinical)\s+){0,2}"
    r"(physician|doctor|nurse|dietitian|dietician|nutritionist|pharmacist|lawyer|attorney|accountant|"
    r"paralegal|therapist|psychologist|psychiatrist|dentist|surgeon|pediatrician|paediatrician|midwife|"
    r"gastroenterologist|allergist|endocrinologist|cardiologist|financial (?:advisor|adviser|planner)|"
    r"medical professional|health professional|healthcare professional|nutrition coach|health coach|"
    r"wellness coach|"
    r"naturopath|herbalist|chiropractor|physiotherapist|physical therapist|nurse practitioner|medical doctor|"
    r"nutrition expert|gut health expert)\b"
    r"(?!\s+(?:would|will|might|may|could|can|should|told|tells|says|said|once)\b)"
)
# The first person in Spanish, Portuguese, French, German or Italian ("mi favorito es...", "ich backe
# jeden Tag"): a claim when the sentence also has a word of those languages' grammar (an article,
# a preposition, the verb "to be"; none that is also an English word), so a stray "io" or "mi" in
# English text is not one.
_FOREIGN_FIRST_PERSON = re.compile(
    r"\b(?:mi|mis|yo|nuestr[oa]s?|conmigo|meu|minha|meus|minhas|nosso|nossa|mon|je|j'|moi|notre|nos|"
    r"mein|meine|meinen|meinem|meiner|ich|wir|unser|unsere|unseren|mio|mia|miei|mie|io|noi|"
    # the verb alone says "I" where the pronoun is dropped: "tengo dos hijos", "sou casada", "ho due figli"
    r"tengo|soy|estoy|vivo|trabajo|nací|naci|crecí|creci|tenho|sou|estou|moro|trabalho|nasci|cresci|ho|sono|"
    r"abito|lavoro|sposata|sposato|casada|casado|verheiratet|mariée|mariee)(?!\w)"
)
_FOREIGN_FUNCTION = frozenset(
    """
    el la los las de del es que un una con por para su todos todas en y
    os dos das uma em na com é são
    le les des du est et une au aux dans pour avec sur ce cette
    der das dem und ist sind ein eine einen mit von zu auf für nicht jeden jede
    il gli di della è sono che
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_FOREIGN_WORD = re.compile(r"[^\W\d_]+")


def _foreign_first_person(text: str) -> bool:
    if _FOREIGN_FIRST_PERSON.search(text) is None:
        return False
    return any(w in _FOREIGN_FUNCTION for w in _FOREIGN_WORD.findall(text))


# Any other first-person statement of what the creator does or did ("I served in the army", "we
# hike every weekend", "I hold a black belt") is a claim too, unless its verb gives an opinion, a
# feeling, an intention or a courtesy rather than a fact ("I think", "I hope", "I'd say").
_ADVERB = (
    r"(?:also|still|actually|originally|usually|always|often|sometimes|once|recently|just|really|"
    r"currently|now|then|even|mostly|generally|normally|typically|already|first|later|finally|never)"
)
_OPINION_VERBS = frozenset(
    """
    think thought feel felt love loved like liked adore hate enjoy enjoyed prefer hope hoped wish
    guess believe bet wonder wondered know knew mean meant want wanted need would could can cannot
    do did will shall should might may must recommend suggest say said agree disagree appreciate
    understand see promise swear imagine suppose doubt trust admit find try tried get
    hear heard totally absolutely really am was were have had has is are be been would've could've
    should've ought wanna gotta gonna apologize apologise worry care miss missed remember
    forget forgot notice noticed mention mentioned only
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
# "We all start somewhere" speaks of everyone, not of the creator's household.
_FIRST_PERSON_VERB = re.compile(
    r"\b(?:i|we(?!\s+(?:all|both|each|humans|bakers|people)\b))\s+(?:" + _ADVERB + r"\s+){0,2}([a-z]+)\b(?!')"
)
# Sentences that decline to state anything are never claims, whatever words they use.
_NON_CLAIM = re.compile(
    r"haven't shared|have not shared|never shared|not something i(?:'ve| have)? shared|"
    r"i don't talk about|i'd rather not|rather not say|i can't say|i'm not sure"
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
}  # fmt: skip
# Words that carry no fact: pronouns, auxiliaries, fillers, and the claim verbs themselves (the
# verb says *that* something is claimed; the content words say *what*).
_STOP = frozenset(
    """
    a an the and or but so if of in on at to for from with by as into about over after before since
    while because though although whereas unless until
    than then that this these those there here it its it's i i'm i've i'd i'll me my mine myself we
    we're we've our ours us you your yours he she they them his her their is am are was were be been
    being have has had having do does did doing will would can could should may might must shall
    not no yes very really just also still now currently actually originally usually always once
    recently too quite pretty much many more most some any all every each both few lot lots bit
    little kind sort thing things way ways time times day days year years ago get got getting go
    goes went going gone make made making own owned live lived lives living work worked works
    use used using keep kept like love loved one ones who what when where why how which
    called named another other others again off out back around even yet per ever every only almost
    nearly probably maybe perhaps don't doesn't didn't isn't aren't wasn't weren't can't won't wouldn't
    shouldn't couldn't haven't hasn't hadn't that's what's there's let's you're they're it'll
    well yeah oh ok okay sure totally honestly basically definitely
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


@dataclass(frozen=True)
class Grounding:
    """The grounding verdict on one sentence.

    Attributes:
        is_claim: The sentence states a first-person fact about the creator.
        supported: The claim's content is found in the evidence; for a sentence that is not a
            claim, False only when a specific detail of it (a number, a place, an age, a life
            event) is not (:func:`_details`).
        coverage: Share of the claim's content words found (1.0 when it has none).
        missing: Content words and numbers not found, for the audit detail.
    """

    is_claim: bool
    supported: bool
    coverage: float
    missing: tuple[str, ...] = ()


NOT_A_CLAIM = Grounding(is_claim=False, supported=True, coverage=1.0)


def is_claim(text: str, subjects: frozenset[str] = frozenset()) -> bool:
    """Whether a normalised sentence states a fact about the creator or their household.

    Args:
        text: The sentence, normalised (NFKC, case-folded).
        subjects: Names of the people and pets in the creator's life (see :func:`subjects_of`);
            a statement about one of them ("Leo works downtown") is a claim about the creator too.
    """
    stripped = text.strip()
    if not stripped or stripped.endswith("?") or _NON_CLAIM.search(stripped):
        return False
    if _CLAIM.search(stripped) is not None or _foreign_first_person(stripped):
        return True
    if any(m.group(1) not in _OPINION_VERBS for m in _FIRST_PERSON_VERB.finditer(stripped)):
        return True
    # "Leo's favourite is..." speaks of Leo as much as "Leo works downtown" does.
    return bool(subjects) and any(w.split("'")[0] in subjects for w in _WORD.findall(stripped))


_NAME = re.compile(
    r"\b(?:partner|husband|wife|boyfriend|girlfriend|fianc[eé]e?|son|daughter|kid|child|baby|mom|mum|dad|"
    r"mother|father|brother|sister|friend|roommate|cat|dog|puppy|kitten|pet|horse|bird|starter)\s+"
    r"(?:(?:is\s+)?(?:named|called)\s+)?([A-Z][a-z]{2,})\b"
)


def subjects_of(facts: Iterable[str]) -> frozenset[str]:
    """The people and pets the creator names in their stated facts, case-folded.

    "I live with my partner Leo and our cat Crumb." gives ``{"leo", "crumb"}``: a name right after
    the relation that introduces it. Place names are not subjects (talking about Tucson's weather is
    not a claim about the creator).
    """
    names: set[str] = set()
    for fact in facts:
        names.update(m.group(1).casefold() for m in _NAME.finditer(fact))
    return frozenset(names - _STOP)


def content_words(text: str) -> set[str]:
    """The normalised content words of ``text`` (lightly stemmed, stop words removed)."""
    out = set()
    for word in _WORD.findall(text):
        word = _NUMBER_WORDS.get(word, word)
        if word in _STOP or (len(word) < 3 and not word.isdigit()):
            continue
        out.add(_stem(word))
    return out


# "I'm 34": an age is a number that counts years of the creator's life.
_AGE = re.compile(
    r"\b(?:i'm|i am|im)\s+(\d+)\b(?!\s*%)"
    r"(?!\s+(?:minutes?|mins?|hours?|days?|weeks?|months?|steps?|pages?|loaves|grams?|g|percent)\b)"
    r"|\b(\d+|" + "|".join(_NUMBER_WORDS) + r")[- ]years?[- ]olds?\b"
)
_COUNTED = re.compile(
    r"(?<![\w:/.,'])(\d+|" + "|".join(_NUMBER_WORDS) + r")\s+([a-z]+)\b(?:\s+([a-z]+)\b)?(?:\s+([a-z]+)\b)?"
)
# Units and the like: "250 degrees" and "250°C" are the same fact written two ways, and a ratio,
# a time or a measure is checked as a number, not as a count of things.
_UNITS = frozenset(
    """
    c f degree degrees celsius fahrenheit percent pct minute minutes min mins hour hours hr hrs
    second seconds sec secs week weeks month months g gram grams kg kilo kilos ml l liter liters
    litre litres oz ounce ounces lb lbs cup cups tbsp tsp inch inches cm mm am pm
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


def counted_things(text: str, reach: int = 1) -> set[str]:
    """Each number of ``text`` with the thing it counts: ``"40 loaf"``, ``"2 dog"``.

    A number is a fact only with what it counts: "40" in "40% whole rye" does not support "I bake
    40 loaves", and a "34" somewhere in the evidence does not support "I'm 34" (``"age 34"``).
    Only a number standing alone before a word counts something; one before a stop word or a
    unit ("at 8 am", "20 minutes"), inside a ratio or a time ("1:5:5") or glued to a symbol
    ("250°C") gives nothing, and is checked as a plain number.

    Args:
        text: Normalised text.
        reach: How many words after the number may be what it counts: 1 for a claim, more for
            the evidence, where a name or an adjective may sit between ("Hearth 30 electric
            wall oven" supports "a Hearth 30 wall oven").
    """
    out = {
        f"age {_NUMBER_WORDS.get(m.group(m.lastindex or 1), m.group(m.lastindex or 1))}"
        for m in _AGE.finditer(text)
    }
    for match in _COUNTED.finditer(text):
        number = _NUMBER_WORDS.get(match.group(1), match.group(1))
        if not number.isdigit() or (reach == 1 and (match.group(2) in _STOP or match.group(2) in _UNITS)):
            continue
        for following in [w for w in match.groups()[1 : 1 + reach] if w is not None]:
            if following not in _STOP and following not in _UNITS:
                out.add(f"{number} {_stem(following)}")
    return out


def support_vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """The content words and counted things of the evidence and stated facts (:func:`check_grounding`)."""
    vocab: set[str] = set()
    for text in texts:
        folded = text.casefold()
        vocab |= content_words(folded) | counted_things(folded, reach=3)
    return frozenset(vocab)


def check_grounding(
    text: str,
    vocabulary: frozenset[str],
    subjects: frozenset[str] = frozenset(),
    names: frozenset[str] = frozenset(),
) -> Grounding:
    """Judge one normalised sentence against the support vocabulary.

    Args:
        text: The sentence, normalised (NFKC, case-folded).
        vocabulary: :func:`support_vocabulary` of the turn's evidence and the stated facts.
        subjects: Names in the creator's life (see :func:`is_claim`).
        names: Proper names in the sentence, case-folded (see :func:`proper_names`).

    Returns:
        The verdict. A claim with any number missing from the evidence is unsupported whatever its
        coverage: numbers are the details a model invents most readily and a fan checks first. So
        is a claim whose first-person verb, or the first content word after it, the evidence never
        uses ("I *run* five miles" when the posts only feed the starter, "I ran a *marathon*"):
        the action and what it acts on are the fact. A name found in the evidence
        (the creator's partner, pet or starter) says who the claim is about, not what it claims,
        so it does not count towards coverage; a name missing from the evidence makes the claim
        unsupported, and so does a number that counts something else there ("40 loaves" against
        "40% rye"; see :func:`counted_things`), and so does a missing life event or household
        member (:data:`_LIFE_WORDS`). Otherwise a name missing still counts as missing.
    """
    if in_other_language(text):
        return _details_across_languages(text, vocabulary, names)
    credentials = [m.group(1) for m in _CREDENTIAL.finditer(text)]
    if not credentials and not is_claim(text, subjects):
        return _details(text, vocabulary, names)
    known_names = {_stem(n) for n in subjects | names}
    words = {w for w in content_words(text) if w not in known_names or w not in vocabulary}
    if not words and not credentials:
        return Grounding(is_claim=True, supported=True, coverage=1.0)
    missing = tuple(sorted(w for w in words if w not in vocabulary))
    coverage = 1.0 - len(missing) / len(words) if words else 1.0
    # A number must count the same thing as in the evidence, and a name (a place, a person) the
    # evidence never mentions is an invented detail however well the rest is covered.
    uncounted = sorted(c for c in counted_things(text) if c not in vocabulary)
    # A temperature restated in the other scale ("230°C (450°F)") is the same fact as the one known.
    converted = _converted_temperatures(text, vocabulary)
    if converted:
        missing = tuple(w for w in missing if w not in converted)
        uncounted = [c for c in uncounted if c.split()[0] not in converted]
    numbers_missing = any(w.isdigit() for w in missing) or bool(uncounted)
    names_missing = [n for n in names if _stem(n) in missing]
    # The life events and household members fans ask about are the fact itself ("we got hitched
    # last summer"): the evidence must say them, however well the rest is covered.
    life_missing = [w for w in missing if w in _LIFE_WORDS]
    verb_missing = any(v in missing for v in _claim_verbs(text) | _claim_objects(text))
    credential_missing = [c for c in credentials if not all(_stem(w) in vocabulary for w in c.split())]
    if credential_missing:
        missing = tuple(sorted({*missing, *credential_missing}))
    # Reported only where the number itself is known ("40 loaf" against "40% rye").
    miscounted = [c for c in uncounted if c.split()[0] not in missing]
    if miscounted:
        missing = tuple(sorted({*missing, *miscounted}))
    supported = (
        coverage >= SUPPORT_THRESHOLD
        and not numbers_missing
        and not names_missing
        and not life_missing
        and not verb_missing
        and not credential_missing
    )
    return Grounding(is_claim=True, supported=supported, coverage=coverage, missing=missing)


# A span of time counted in words ("twelve years now"): a number a model invents as readily as a digit.
_SPAN_IN_WORDS = re.compile(
    r"\b("
    + "|".join(_NUMBER_WORDS)
    + r")\s+(?:whole\s+|full\s+|long\s+)?(?:years?|months?|weeks?|decades?)\b"
)
_DIGITS = re.compile(r"(?<![\w.,:/])\d+(?:[.,]\d+)*")
# "in", "at", "from" and their Spanish/Portuguese/French/German/Italian counterparts ("nací en...").
_PLACE = (
    r"\b(?:in|at|from|near|to|en|em|na|à|au|aux|im|aus|nach|bei|desde|da|dal|di|del|de)\s+"
    r"(?:the\s+|la\s+|el\s+|le\s+|der\s+|dem\s+)?"
)
# Capitalised words after "in" or "at" that name a time, not a place ("in May", "on Monday").
_CALENDAR = frozenset(
    """
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday spring summer fall autumn winter
    christmas easter thanksgiving
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


def _details(text: str, vocabulary: frozenset[str], names: frozenset[str]) -> Grounding:
    """Judge the specific details of a sentence that is not a first-person claim.

    Without "I" or "my" a sentence still states the creator's facts when it gives a number ("the
    Brightwell cost about $2,000", "mornings start at 4 am", "twelve years now") or puts something
    in a named place ("Saturdays are for the market at Rillito Park", "back in Chicago"): those are
    the details a model invents and a fan takes as the creator's word. Each number (digits, or a
    span of years counted in words) and each place name must be in the evidence; the rest of the
    sentence is free, as instructions and general remarks are. Questions are never judged.
    """
    stripped = text.strip()
    if not stripped or stripped.endswith("?") or _NON_CLAIM.search(stripped):
        return NOT_A_CLAIM
    numbers = {m.group(0).replace(",", "") for m in _DIGITS.finditer(stripped)}
    numbers |= {_NUMBER_WORDS[m.group(1)] for m in _SPAN_IN_WORDS.finditer(stripped)}
    places = {n for n in names - _CALENDAR if re.search(_PLACE + re.escape(n) + r"\b", stripped)}
    # an age must be the same age in the evidence, not any "7" there ("seven years old" vs "7 am")
    ages = {c for c in counted_things(stripped) if c.startswith("age ") and c not in vocabulary}
    events = {w for w in content_words(stripped) if w in _EVENT_WORDS and w not in vocabulary}
    if not numbers and not places and not ages and not events:
        return NOT_A_CLAIM
    converted = _converted_temperatures(stripped, vocabulary)
    missing = sorted(
        {
            n
            for n in numbers
            if n not in vocabulary and n not in converted and not _split_number_known(n, vocabulary)
        }
        | {n for n in places if _stem(n) not in vocabulary}
        | ages
        | events
    )
    if not missing:
        return NOT_A_CLAIM
    # Not a first-person claim: a detail the evidence does not state (see checks.py for precedence).
    return Grounding(is_claim=False, supported=False, coverage=0.0, missing=tuple(missing))


def _split_number_known(number: str, vocabulary: frozenset[str]) -> bool:
    # The evidence's vocabulary splits "2,000" and "1.5" into their digit groups, as a claim's does.
    parts = re.split(r"[.,]", number)
    return len(parts) > 1 and all(p in vocabulary for p in parts)


# A temperature with its scale: "230°C", "450 °F", "250 degrees Celsius", "475f".
_TEMPERATURE = re.compile(
    r"(?<![\d.,])(\d{2,3})\s*(?:°\s*|º\s*|degrees?\s+|deg\s+)?(celsius|centigrade|fahrenheit|c|f)\b"
)
TEMPERATURE_TOLERANCE = 6
"""Degrees either way a converted temperature may round to (450°F is 232°C, written 230°C)."""


def _converted_temperatures(text: str, vocabulary: frozenset[str]) -> set[str]:
    """Numbers of ``text``'s temperatures whose value in the other scale the evidence states."""
    found = set()
    for match in _TEMPERATURE.finditer(text):
        value = int(match.group(1))
        fahrenheit = match.group(2) in ("f", "fahrenheit")
        other = round((value - 32) * 5 / 9) if fahrenheit else round(value * 9 / 5 + 32)
        near = range(other - TEMPERATURE_TOLERANCE, other + TEMPERATURE_TOLERANCE + 1)
        if any(str(n) in vocabulary for n in near):
            found.add(match.group(1))
    return found


_LIFE_EVENTS = """
    pregnant pregnancy expecting trimester baby babies newborn twins kid kids child children son
    sons daughter daughters toddler stepkids grandkids grandchildren husband wife boyfriend
    girlfriend fiance fiancee married marry marriage wedding engaged engagement divorced divorce
    hitched honeymoon adopted adoption widowed allergic allergy intolerant intolerance celiac
    coeliac diabetic diabetes illness cancer surgery disabled hubby hubbie hubs wifey missus spouse
"""


def _stems(words: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in words.split())


# The life events and partners that a sentence states whoever its subject ("happily wed for eight
# years", "the wedding was in June"); children are not among them, since "kids love this recipe"
# speaks of no one's kids.
_EVENTS = """
    pregnant pregnancy trimester newborn married marriage wedding divorced divorce hitched honeymoon
    wed widowed husband wife fiance fiancee boyfriend girlfriend hubby hubbie wifey spouse
"""


# Irregular past forms folded to their base, so "fed" in a post supports "I feed her" and "ran" in
# a claim needs "run" (or "ran") in the evidence, like any regular verb.
_IRREGULAR_PAST = {
    "fed": "feed", "ran": "run", "bought": "buy", "brought": "bring", "taught": "teach",
    "caught": "catch", "fought": "fight", "sold": "sell", "told": "tell", "held": "hold",
    "kept": "keep", "slept": "sleep", "swept": "sweep", "spent": "spend", "sent": "send",
    "built": "build", "lent": "lend", "left": "leave", "met": "meet", "led": "lead", "paid": "pay",
    "wrote": "write", "written": "write", "drove": "drive", "driven": "drive", "rode": "ride",
    "ridden": "ride", "took": "take", "taken": "take", "gave": "give", "given": "give",
    "ate": "eat", "eaten": "eat", "drank": "drink", "drunk": "drink", "sang": "sing", "sung": "sing",
    "swam": "swim", "began": "begin", "begun": "begin", "grew": "grow", "grown": "grow",
    "threw": "throw", "thrown": "throw", "flew": "fly", "flown": "fly", "knew": "know",
    "known": "know", "wore": "wear", "worn": "wear", "won": "win", "spoke": "speak",
    "spoken": "speak", "broke": "break", "broken": "break", "chose": "choose", "chosen": "choose",
    "froze": "freeze", "frozen": "freeze", "stole": "steal", "woke": "wake", "forgot": "forget",
    "found": "find", "stood": "stand", "understood": "understand", "sat": "sit", "became": "become",
    "came": "come", "saw": "see", "seen": "see", "fell": "fall", "fallen": "fall", "felt": "feel",
    "dug": "dig", "hung": "hang", "shot": "shoot", "lost": "lose", "hid": "hide", "struck": "strike",
    "made": "make", "had": "have", "did": "do", "done": "do", "went": "go", "gone": "go",
    "rose": "rise", "risen": "rise",
}  # fmt: skip


# Verbs whose object carries the fact ("I *take* the lid off", "I *put* it in the fridge", "I *make*
# rye on Fridays"): the evidence need not use the verb, but must name what it acts on.
_LIGHT_VERBS = frozenset(
    """
    take takes took put puts set sets turn turns bring brings give gives let lets leave leaves pop pops
    make makes keep keeps get gets
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


# Words between a verb and its object that say how sure or how often, not what ("I look for
# *roughly* a 50% rise"): skipped when looking for the object, as a model adds them freely.
_HEDGES = frozenset(
    """
    roughly usually always generally normally typically basically really actually honestly pretty
    mostly often sometimes around approximately probably definitely totally absolutely nearly almost
    personally still mainly simply literally
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


def _claim_objects(text: str) -> set[str]:
    """Stems of the first content word after each fact-stating verb ("I ran a *marathon*")."""
    objects = set()
    for match in _FIRST_PERSON_VERB.finditer(text):
        verb = match.group(1)
        light = verb in _LIGHT_VERBS
        if not light and (verb in _OPINION_VERBS or verb in _STOP or len(verb) < 3):
            continue
        for word in [w for w in _WORD.findall(text[match.end() :]) if w not in _HEDGES][:3]:
            word = _NUMBER_WORDS.get(word, word)
            if word not in _STOP and (len(word) >= 3 or word.isdigit()):
                objects.add(_stem(word))
                break
    return objects


def _claim_verbs(text: str) -> set[str]:
    """Stems of the fact-stating verbs right after "I"/"we" ("I *served*", "we *hike*")."""
    verbs = set()
    for match in _FIRST_PERSON_VERB.finditer(text):
        verb = match.group(1)
        if verb not in _OPINION_VERBS and verb not in _STOP and verb not in _LIGHT_VERBS and len(verb) >= 3:
            verbs.add(_stem(verb))
    return verbs


_PROPER = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+(?:'[a-z]+)?)")


def proper_names(sentence: str) -> frozenset[str]:
    """Capitalised words of a sentence as written, case-folded, except its first word and "I".

    "I feed Doughlores at 8 am." gives ``{"doughlores"}``.
    """
    return frozenset(
        m.group(1).casefold() for m in _PROPER.finditer(sentence.strip()) if m.group(1) not in ("I", "I'm")
    )


def _stem(word: str) -> str:
    # Just enough folding that "loaves"/"loaf", "baking"/"bake", "kids"/"kid" meet; anything
    # smarter would merge words whose difference is the fact being checked.
    if word.endswith("'s"):
        word = word[:-2]
    if word in _IRREGULAR_PAST:
        word = _IRREGULAR_PAST[word]
    if word.isdigit() or len(word) <= 3:
        return word
    for suffix, repl in (("ies", "y"), ("ves", "f"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            return word[: -len(suffix)] + repl
    return word


_LIFE_WORDS = _stems(_LIFE_EVENTS)
"""Stems of :data:`_LIFE_EVENTS`: household members and life events a claim must be supported on."""
_EVENT_WORDS = _stems(_EVENTS)
"""Stems of :data:`_EVENTS`: life events and partners a sentence without I or my must be supported on."""


def _details_across_languages(text: str, vocabulary: frozenset[str], names: frozenset[str]) -> Grounding:
    """Judge a sentence in another language than the evidence by its English gloss.

    The sentence is glossed word by word (:func:`english_gloss`). Its numbers (digits, or number
    words of the gloss) and names must each be in the evidence: "la tapa va 20 minutos a 250 °C"
    passes against "lid on 20 minutes at 250°C". A statement with neither is judged by its glossed
    content words as an English claim is, at the stricter :data:`OTHER_LANGUAGE_SUPPORT`, since a
    word the glossary lacks stays foreign and counts as missing: "je la nourris deux fois par
    jour" ("feed twice day") passes against "I feed her twice a day", while an invented fact
    ("mi color favorito es el azul") still abstains. German capitalises every noun, so only the
    names the evidence itself has count there as names; an invented German name is not caught.
    """
    stripped = text.strip()
    if not stripped or stripped.endswith("?"):
        return NOT_A_CLAIM
    # The commitment rules read English; a promise in another language (free things sent, money,
    # a meeting) abstains here rather than passing on a matching number.
    promise = _OTHER_LANGUAGE_PROMISE.search(stripped)
    if promise is not None:
        return Grounding(is_claim=True, supported=False, coverage=0.0, missing=(promise.group(0),))
    glossed = content_words(english_gloss(stripped))
    numbers = {_clock(d.replace(",", "."), vocabulary) for d in _DIGITS.findall(stripped)}
    numbers |= {_clock(w, vocabulary) for w in glossed if w.isdigit()}
    known_names = {n for n in names if _stem(n) in vocabulary}
    unknown_names = set() if capitalises_nouns(stripped) else {n for n in names if _stem(n) not in vocabulary}
    missing = tuple(sorted({*(n for n in numbers if n not in vocabulary), *unknown_names}))
    # As in English, a household member or life event must be in the evidence whatever else checks
    # out ("ich habe zwei Kinder" against a "2" of the posts).
    life = tuple(sorted(w for w in glossed if w in _LIFE_WORDS and w not in vocabulary))
    if life:
        return Grounding(is_claim=True, supported=False, coverage=0.0, missing=life)
    checked = len(numbers) + len(known_names) + len(unknown_names)
    if checked:
        # Numbers and names carry the claim. Requiring the glossed words around them too was
        # measured on the tuning set: false positives 21 -> 32 (at a share of 0.4) or 43 (0.6).
        coverage = 1.0 - len(missing) / checked
        return Grounding(is_claim=True, supported=not missing, coverage=coverage, missing=missing)
    name_stems = {_stem(n) for n in names}
    words = {w for w in glossed if not w.isdigit() and w not in name_stems}
    if not words:
        return Grounding(is_claim=True, supported=False, coverage=0.0, missing=("(nothing to check)",))
    missing = tuple(sorted(w for w in words if w not in vocabulary))
    coverage = 1.0 - len(missing) / len(words)
    return Grounding(
        is_claim=True, supported=coverage >= OTHER_LANGUAGE_SUPPORT, coverage=coverage, missing=missing
    )


_OTHER_LANGUAGE_PROMISE = re.compile(
    r"\b(?:gratis|gratuit(?:e|s|es|ement)?|grátis|gratuit[oa]s?|gratuitamente|kostenlos|umsonst|"
    r"regal(?:o|a|ar|are|arte)|cadeau|geschenk|schenke|te\s+(?:mando|envío|envio|regalo|presto|pago|"
    r"transfiero|empresto)|je\s+t['’]envoie|je\s+te\s+(?:paie|rembourse|prête)|ti\s+(?:mando|spedisco|regalo|"
    r"pago|presto)|ich\s+(?:schicke|sende|schenke|zahle|leihe)\s+dir|"
    r"dinero|argent|geld|dinheiro|soldi|préstamo|prestito|empréstimo|darlehen|nos\s+vemos|quedamos|"
    r"on\s+se\s+(?:voit|retrouve)|retrouvons|treffen\s+wir|ci\s+vediamo|nos\s+encontramos|"
    r"mi\s+(?:número|numero|dirección|direccion|whatsapp)|mon\s+(?:numéro|adresse)|meine\s+(?:nummer|adresse)|"
    r"il\s+mio\s+(?:numero|indirizzo)|meu\s+(?:número|endereço))\b"
)


def _clock(number: str, vocabulary: frozenset[str]) -> str:
    """A 24-hour time ("17 h", "alle 17") as the evidence's 12-hour one ("5 pm") when only that is known."""
    if number.isdigit() and 13 <= int(number) <= 23 and number not in vocabulary:
        twelve = str(int(number) - 12)
        if twelve in vocabulary:
            return twelve
    return number
