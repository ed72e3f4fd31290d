"""Related terms for the blocked topics creators most often set, so keywords cover paraphrases.

A creator blocking "family" with the keywords "kids" and "children" means the fan asking about
"your little ones" or "the toddler" too; one blocking "politics" with "election" and "government"
means the mayor and the senator. Embedding similarity to the topic's examples catches some of
these; this table catches the everyday words for the same things whatever the examples say.

A concept applies to a topic when one of its *triggers* is a word or phrase of the topic's name,
description or keywords (whole words, plural tolerant); its *terms* are then matched like keywords.
Terms are chosen to be unambiguous in a creator's ordinary conversation: "tax" (the shop price),
"baby" (a pet name for a starter), "pounds" (of flour), "shape" (of a loaf), "expecting" (a rise),
"ice" (an ice bath), "trump" (a trump card), "the wall" (of an oven), "take home" (a loaf from a
class) or "how much do you make" (loaves per batch) are left out; the phrases around them ("are you
expecting", "ice raids", "trump supporter", "border wall", "take-home pay") are not.

Each subject also lists the same everyday words in Spanish, Portuguese, French, German and
Italian ("hijos", "enceinte", "elecciones", "sueldo"): the message embedding (MiniLM) is
English-centric and places a question in another language poorly, so the words are what catch
it. Words that are also common English or baking words ("kinder", "peso", "regime", "kilos",
"bebé" for a starter, German "Gehalt" for a content) are only listed inside phrases ("hast du
kinder") or left out. A few idioms name a subject without any of its words ("a bun in the
oven", "eating for two", "links oder rechts"), and some questions are caught by their shape
(:attr:`Concept.patterns`: the creator's earnings set against an old job).

The other way round, :data:`BENIGN_SENSES` lists the everyday senses of words creators often
choose as keywords ("measured by weight", "weigh the flour", "a rich dough", "vote for next
week's bake", Spanish "son"): a keyword found only inside one of them does not match
(``checks.py``), and the message is judged by its meaning (examples, classifier) alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.policy.core.controls import BlockedTopic


@dataclass(frozen=True)
class Concept:
    """Words that name one sensitive subject.

    Attributes:
        name: What the subject is called (keys :data:`topic_bank.SUBJECT_EXAMPLES`).
        triggers: Words or phrases of a topic that say the creator blocks this subject.
        terms: Words or phrases a fan uses for the subject, matched like keywords.
        patterns: Regexes (over normalised text) for what no fixed phrase says: the shape of a
            question rather than its words ("do you make more from X than you did as Y").
    """

    name: str
    triggers: tuple[str, ...]
    terms: tuple[str, ...]
    patterns: tuple[str, ...] = ()


CONCEPTS = (
    Concept(
        name="family",
        triggers=("kid", "kids", "child", "children", "family", "families", "pregnancy", "pregnant",
                  "parenting", "motherhood", "fatherhood", "son", "daughter"),
        terms=("little ones", "little one", "kiddo", "kiddos", "toddler", "toddlers", "infant", "newborn",
               "offspring", "stepkids", "stepson", "stepdaughter", "grandkids", "grandchildren",
               "your family", "ur family", "family life", "family members", "start a family",
               "parenting", "motherhood", "maternity leave", "daycare", "preschool", "kindergarten",
               "expecting a baby", "having a baby", "pregnancy", "pregnant", "are you expecting",
               "you expecting", "baby bump", "little bump", "your bump", "the bump", "ur bump", "trimester",
               "morning sickness", "bun in the oven", "eating for two", "in the family way",
               "baby on the way", "little one on the way",
               "baby shower", "gender reveal", "maternity", "paternity leave",
               # the same questions in the languages fans most often write in besides English
               # (MiniLM reads them poorly): Spanish, Portuguese, French, German, Italian
               "hijos", "hijas", "niños", "ninos", "embarazada", "embarazo", "maternidad",
               "filhos", "filhas", "grávida", "gravida", "gravidez", "enfants", "enceinte", "grossesse",
               "hast du kinder", "haben sie kinder", "deine kinder", "ihre kinder", "schwanger",
               "schwangerschaft", "figli", "figlie", "bambini", "incinta", "gravidanza", "mutterschaft",
               "maternité", "maternità", "kinderwunsch"),
        patterns=(
            # "are you a mother?" in the languages above ("Bist du schon Mutter?", "¿Eres mamá?")
            r"\b(?:bist\s+du|sind\s+sie|eres|es\s+usted|es-tu|es\s+tu|tu\s+es|êtes-vous|vous\s+êtes|você\s+é|"
            r"voce\s+e|tu\s+és|és|sei|lei\s+è)\s+(?:\w+\s+){0,2}?(?:mutter|mama|mami|vater|papa|mamá|madre|padre|"
            r"papá|mère|maman|père|mãe|mae|pai|mamma|genitore)\b",
            # becoming a parent ("¿Tienes planes de ser madre?", "Mutter werden", "become a mom")
            r"\b(?:ser|volverte|convertirte\s+en|virar|tornar-se|être|devenir|diventare|essere)\s+(?:una?\s+|une?\s+|uma?\s+)?"
            r"(?:madre|mamá|mama|padre|papá|mãe|mae|pai|mère|maman|père|mamma|papà|genitore|genitori|padres|pais|parents)\b",
            r"\b(?:mutter|mama|vater|papa|eltern)\s+(?:zu\s+)?werden\b",
            r"\bbecom(?:e|es|ing)\s+(?:a\s+)?(?:mom|mum|mother|mama|parent|parents|dad|father)\b",
            # the creator's own asked for beside the fan's ("my kids want to know if you have any of
            # your own", "my son is 4, how old are yours?", "my daughter asked if you're a mom too")
            r"\b(?:you're|you are|are you|r u|ru|if you're)\s+(?:also\s+)?(?:a\s+)?"
            r"(?:mom|mum|mother|mama|mommy|momma|parent|dad|father|daddy)\b",
            r"\b(?:any|some|kids|children|little ones|babies)\s+of\s+(?:your|ur)\s+own\b"
            r"(?!\s+(?:\w+\s+)?(?:recipes?|starters?|loaves|breads?|videos?|books?|flours?|blends?|doughs?|"
            r"products?|designs?|kits?|tools?))",
            r"\b(?:how old|what ages?|how many)\s+are\s+"
            r"(?:yours|your\s+(?:kids?|children|little ones|babies|sons?|daughters?))\b",
            # German "Kinder" is an English word too: only in a question about having them
            r"\b(?:hast\s+du|haben\s+sie|habt\s+ihr|willst\s+du|möchtest\s+du|wollt\s+ihr|planst\s+du)\b"
            r"[^.?!]{0,40}?\bkinder\b",
            r"\bkinder\s+(?:zu\s+)?(?:haben|bekommen|kriegen|planen|großziehen)\b",
            # a small child of the creator's running about ("a little you running around the house")
            r"\b(?:little|tiny|mini|small|baby)[\s-]+(?:yous?|mes?|versions?\s+of\s+you|humans?|people|ones?|"
            r"bakers?)\s+(?:\w+\s+)?(?:running|toddling|crawling|scampering|wandering|underfoot|around|at\s+home)\b",
        ),
    ),
    Concept(
        name="politics",
        triggers=("politics", "political", "election", "elections", "government", "president",
                  "politician", "politicians", "vote", "democrat", "republican", "policy debates"),
        terms=("politics", "political", "politically", "politician", "mayor", "governor", "senator", "senate",
               "congress", "congressman", "congresswoman", "parliament", "prime minister",
               "legislation", "legislature", "ballot", "campaign trail", "candidate", "candidates",
               "democrats", "republicans", "liberals", "conservatives", "midterms", "referendum",
               "city council", "white house", "supreme court", "partisan", "left-wing", "right-wing",
               "tax cuts", "tax hike", "tax policy", "voting", "voter", "voters",
               # parties, movements and the people who lead them
               "political party", "which party", "gop", "maga", "donald trump", "president trump",
               "trump supporter", "trump voter", "pro-trump", "anti-trump", "biden", "obama",
               "socialism", "socialist", "communism", "communist", "fascism", "fascist",
               "swing state", "midterm", "primaries", "impeachment", "electoral",
               # the issues campaigns are fought over
               "immigration", "immigrants", "illegal immigrants", "deportation", "deportations",
               "deport", "border wall", "border patrol", "border security", "ice raids", "asylum seekers",
               "refugees", "abortion", "pro-life", "pro-choice", "gun control", "second amendment",
               "gun rights", "tariff", "tariffs", "trade war", "the administration", "this administration",
               "executive order",
               # other languages, as for family
               "política", "politica", "político", "elecciones", "votaste", "votar", "presidente",
               "gobierno", "aranceles", "inmigración", "inmigracion", "partido político", "eleição",
               "eleições", "eleicoes", "votou", "governo", "élection", "élections", "gouvernement",
               "président", "politique", "as-tu voté", "tu as voté", "politik", "regierung", "präsident",
               "wahlen", "elezioni", "hai votato", "welche partei", "partei wählst",
               "links oder rechts", "rechts oder links", "izquierda o derecha", "derecha o izquierda",
               "de izquierda", "de derecha", "gauche ou droite", "de gauche", "de droite",
               "destra o sinistra", "sinistra o destra",
               "esquerda ou direita", "de esquerda", "de direita", "left or right politically",
               # heads of government and party leaders fans name, in any language
               "kamala", "putin", "zelensky", "zelenskyy", "netanyahu", "milei", "bolsonaro", "amlo",
               "sheinbaum", "trudeau", "starmer", "giorgia meloni", "la meloni", "merkel", "scholz",
               "le pen", "desantis", "pelosi", "red state", "blue state", "red states", "blue states",
               # parties and movements by their names
               "afd", "cdu", "csu", "spd", "psoe", "tories", "labour party", "lib dems",
               "rassemblement national", "peronismo", "peronista", "kirchnerismo", "chavismo", "chavista",
               "bolsonarista", "petista"),
        patterns=(
            # "Trump" but not a trump card or "flavour trumps looks"; "o Lula" but not "a lula" (squid)
            r"(?<!would\s)(?<!will\s)(?<!can\s)(?<!could\s)(?<!always\s)(?<!might\s)(?<!to\s)\btrump\b(?!\s+(?:cards?|looks|texture|taste|flavou?rs?|appearance|everything|all|aesthetics|crumb|crust)\b)",
            # "Macron" but not "macrons" (macarons, misspelt)
            r"\bmacron\b(?!s)",
            r"\b(?:o|do|no|ao|pelo|el|del|de|sobre|about|of)\s+lula\b(?!\s+(?:frita|grelhada|recheada|à|a\s))",
            # the colours of the two US parties asked of the creator ("are you more blue or red?")
            r"\b(?:are|r)\s+(?:you|u)\s+(?:more\s+)?(?:of\s+)?(?:a\s+)?(?:team\s+)?(?:red|blue)\s+or\s+(?:team\s+)?"
            r"(?:red|blue)\b(?!\s+(?:\w+\s+)?(?:banneton|bowl|pan|tin|mixer|dutch|oven|pot|apron|bag|box|cup|tea))",
        ),
    ),
    Concept(
        name="body",
        triggers=("weight", "weigh", "diet", "diets", "dieting", "body fat", "slim", "body shape",
                  "body size"),
        terms=("calorie", "calories", "calorie counting", "counting calories", "keto", "paleo",
               "intermittent fasting", "low-carb", "low carb", "carb counting", "macros", "bmi",
               "lose weight", "losing weight", "weight loss", "weigh-in", "dieting", "skinny",
               "overweight", "underweight", "waistline", "dress size", "clothes size", "slimming",
               "body image", "body type", "summer bod", "beach body", "bikini body", "your bod", "curvier",
               "chubby", "chubbier", "plus size", "plus-size", "muffin top", "love handles", "thigh gap",
               "belly fat", "your hips", "your waist", "your thighs", "your belly", "your tummy",
               "your physique", "stay so tiny", "stay tiny", "stay so small", "stay so thin",
               "stay thin", "stay so slim", "stay slim", "keep your figure",
               # other languages, as for family
               "dieta", "adelgazar", "bajar de peso", "cuánto pesas", "cuanto pesas", "emagrecer",
               "perder peso", "quanto você pesa", "maigrir", "combien tu pèses", "ton poids", "abnehmen",
               "diät", "wiegst du", "dimagrire", "quanto pesi", "subir de peso", "subiste de peso",
               "bajaste de peso", "ganar peso", "engordar", "engordaste", "engordado", "engordou",
               "ganhar peso", "prendre du poids", "pris du poids", "perdre du poids", "grossir",
               "zugenommen", "abgenommen", "zunehmen", "ingrassare", "ingrassato", "ingrassata", "perso peso",
               "kilos de más", "quilos a mais", "kilos en trop", "chili in più"),
        patterns=(
            # pounds put on or lost, as a body ("packed on a few pounds"), not pounds of flour
            r"\b(?:pack(?:s|ed|ing)?|put(?:s|ting)?|gain(?:s|ed|ing)?|pil(?:e|es|ed|ing)|lost|los(?:e|es|ing)|"
            r"shed(?:s|ding)?|drop(?:s|ped|ping)?|added|add(?:s|ing)?)\s+(?:on\s+|off\s+)?(?:like\s+)?"
            r"(?:a\s+few|a\s+couple(?:\s+of)?|some|any|those|a\s+lot\s+of|a\s+bunch\s+of|\d+|few|several|ten|"
            r"five|twenty|fifteen)?\s*(?:extra\s+|more\s+)?(?:pounds|lbs|kilos|kgs?|stone)\b(?!\s+of\b)",
            # the same in other languages, either order ("combien de kilos as-tu perdu", "perdiste kilos")
            r"\b(?:kilos?|kg|quilos?|libras|livres|pfund|chili)\b[^.?!]{0,25}?\b(?:perdu|pris|perdido|perdiste|ganado|"
            r"ganaste|subido|subiste|bajado|bajaste|perdeu|ganhou|engordou|emagreceu|verloren|abgenommen|zugenommen|"
            r"persi|presi|perso|preso)\b",
            r"\b(?:perdu|pris|perdido|perdiste|ganado|ganaste|subido|subiste|bajado|bajaste|perdeu|ganhou|verloren|"
            r"persi|presi|perso|preso)\s+(?:\w+\s+){0,2}?(?:kilos?|kg|quilos?|libras|livres|pfund|chili)\b",
        ),
    ),
    Concept(
        name="income",
        triggers=("income", "salary", "earn", "earnings", "money", "net worth", "rich", "wealth"),
        terms=("earnings", "paycheck", "wage", "wages", "revenue", "wealthy", "wealth", "millionaire",
               "how much money", "make a living", "get paid", "net worth",
               "income", "salary", "six figures", "pay cut", "pay raise", "take home pay", "take-home pay",
               "yearly take home", "annual take home",
               "ad revenue", "adsense", "monetization", "youtube pay", "youtube pays", "tiktok pay",
               "tiktok pays", "instagram pay", "instagram pays", "creator fund", "how much you earn",
               "how much do you earn", "how much do u earn",
               # other languages, as for family
               "cuánto ganas", "cuanto ganas", "sueldo", "salario", "ingresos", "quanto você ganha",
               "quanto voce ganha", "salário", "combien tu gagnes", "combien gagnez-vous", "salaire",
               "revenus", "verdienst du", "quanto guadagni", "stipendio", "making bank", "make bank",
               "more lucrative", "pay better than", "pays better than", "make more money", "serious bank",
               "pay the bills", "pays the bills", "pay your bills", "pays your bills", "pay your rent",
               "pays your rent", "cover your rent", "covers your rent", "financially independent",
               "financial independence", "retire off", "retire early", "breadwinner",
               "your finances", "how much did you clear", "did you clear", "rolling in it", "raking it in"),
        patterns=(
            # the creator's earnings set against a job or another income
            r"\b(?:make|making|earn|earning|bring in|bringing in|pull in|pulling in)\s+more\s+"
            r"(?:money\s+|cash\s+)?(?:from|off|with|doing|selling|now|these days|today)\b[^.?!]{0,80}?"
            r"\bthan\s+(?:you\s+(?:did|made|earned|were|used to)|at\s+your|"
            r"your\s+(?:old|last|former|previous|day|office|corporate)|when\s+you\s+(?:were|worked))\b",
            r"\b(?:does|did|do|is|was)\s+(?:it|this|that|baking|the\s+\w+|your\s+\w+)\s+(?:pay|paying)\s+(?:you\s+)?"
            r"(?:better|more)\s+than\b",
            # what the creator's work brings in ("how much does the bakery bring in a month?")
            r"\bhow\s+much\s+(?:money\s+|cash\s+)?(?:does|do|did|will|would)\s+(?:the|your|ur|this|that|all\s+this)\s+"
            r"(?:\w+\s+){0,2}?(?:bring\s+in|pull\s+in|rake\s+in|generate|gross|net|earn|pay\s+you|make\s+you)\b",
            r"\b(?:cu[aá]nto|quanto|combien|wie\s*viel)\s+(?:\w+\s+){0,3}?(?:ganas|gana|ganan|ganhas|ganha|gagnes|gagnez|"
            r"gagne|verdienst|verdienen|guadagni|guadagna)\b",
            # what the creator is paid per month or year ("¿cuánto cobras al mes?", "was bekommst du im
            # Monat?")
            r"\b(?:cu[aá]nto|quanto|combien|wie\s*viel|was)\b[^.?!]{0,20}?\b(?:cobras|cobra|recebes|recebe|touches|"
            r"bekommst|prendi|ganas|ganhas|gagnes|verdienst|guadagni)\b[^.?!]{0,25}?\b(?:al|por|a|ao|par|pro|im|pro|per|"
            r"al|all'|in|a)\s+(?:mes|año|ano|mês|mois|an|année|monat|jahr|mese|anno)\b",
        ),
    ),
)  # fmt: skip


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.casefold()).strip() + " "


def _mentions(haystack: str, phrase: str) -> bool:
    words = _words(phrase)
    if words in haystack:
        return True
    # plural tolerant, as keywords are: "politicians" triggers "politician" and the other way round
    singular = words[:-2] + " " if words.endswith("s ") else words[:-1] + "s "
    return singular in haystack


def related_concepts(topic: BlockedTopic) -> tuple[Concept, ...]:
    """The concepts the topic's name, description or keywords trigger."""
    haystack = _words(" ".join((topic.name, topic.description, *topic.keywords)))
    return tuple(c for c in CONCEPTS if any(_mentions(haystack, t) for t in c.triggers))


def related_patterns(topic: BlockedTopic) -> tuple[str, ...]:
    """Regexes of every concept the topic triggers (:attr:`Concept.patterns`)."""
    return tuple(p for concept in related_concepts(topic) for p in concept.patterns)


def related_terms(topic: BlockedTopic) -> tuple[str, ...]:
    """Terms of every concept the topic's name, description or keywords trigger, minus its keywords."""
    own = {k.casefold() for k in topic.keywords}
    out: list[str] = []
    for concept in related_concepts(topic):
        out.extend(t for t in concept.terms if t not in own and t not in out)
    return tuple(out)


# Everyday senses of words creators often list as keywords, in the kitchen and in other languages:
# "by weight", "weigh the flour", "a rich dough", "vote for next week's bake", Spanish "son" (are).
# A keyword found only inside one of these spans is not the topic: a fan asking how to measure a
# feed is not asking what the creator weighs. The spans name what the word acts on, so "how much
# do you weigh" or "is bread making you rich" still match.
_FOOD_WORDS = (
    r"flour|dough|doughs|water|salt|sugar|butter|starter|levain|feed|feeding|ingredients?|loaf|loaves|"
    r"batch|bread|rye|wheat|seeds|grains?|yeast|milk|eggs?|honey|oil|nuts|chocolate|cream|cheese|fruit|"
    r"batter|brioche|crumb|crust|pastry|cake|cookies?|filling|sauce|frosting|glaze|custard|flavou?rs?|"
    r"taste|grams?|ounces?|cups?|portions?|pieces?|rolls?|buns?|balls?|sourdough|focaccias?|baguettes?|bagels?|babkas?|"
    r"challahs?|pizzas?|sandwich(?:es)?|toast|pies?|tarts?|scones?|muffins?|croissants?|pretzels?|tortillas?|crackers?|"
    r"olive oil|ganache|caramel|dressing|stew|soup|colou?r|aroma|smell|everything|anything|things|stuff|"
    r"it|them"
)
_FOOD = f"(?:{_FOOD_WORDS})"
_DET = r"(?:the\s+|your\s+|my\s+|our\s+|all\s+|every\s+|a\s+|an\s+|one\s+)?"
_SENSES: tuple[str, ...] = (
    # measuring: "by weight", "weight or volume", "dough weight", "the weight of the flour"
    r"\bby\s+weight\b",
    r"\bweight\s+(?:or|vs\.?|versus|and)\s+(?:by\s+)?volume\b",
    r"\bvolume\s+(?:or|vs\.?|versus|and)\s+(?:by\s+)?weight\b",
    r"\b(?:in|total|net|dry|wet|baked|final|dough|flour|loaf|batch|starter|water|ingredient|grain)\s+weights?\b",
    r"\bweights?\s+(?:of|for)\s+" + _DET + r"(?:\w+\s+)?" + _FOOD + r"\b",
    # weighing an ingredient, or what an ingredient weighs
    r"\bweigh(?:s|ed|ing)?\s+(?:out\s+)?" + _DET + r"(?:\w+\s+)?" + _FOOD + r"\b",
    r"\b" + _FOOD + r"\s+(?:\w+\s+){0,2}?(?:weighs?|weighed|weighing)\b",
    # a rich dough, a filling too rich, how rich the brioche is
    r"\bhow\s+rich\s+(?:is|are|was|should|does|do|can|will|would)\s+(?:the\s+|my\s+|your\s+|a\s+|this\s+|that\s+)?(?:\w+\s+)?"
    + _FOOD
    + r"\b",
    r"\brich(?:er|est)?\s+(?:\w+\s+){0,2}?" + _FOOD + r"\b",
    r"\b" + _FOOD + r"\s+(?:(?:is|are|was|were|gets?|feels?|tastes?|seems?)\s+)?"
    r"(?:too\s+|so\s+|very\s+|really\s+|quite\s+|a\s+bit\s+|super\s+)?rich(?:er)?\b",
    # "weigh out" is measuring ingredients (see "weighing an ingredient" above for "how much starter
    # do you weigh")
    r"\bweigh(?:s|ed|ing)?\s+out\b",
    # what food sounds, looks or smells like ("the mesquite loaf sounds so rich")
    r"\b(?:sounds?|looks?|smells?|tastes?)\s+(?:so\s+|really\s+|very\s+|super\s+|too\s+|incredibly\s+)?rich\b",
    # a slim loaf, a slim chance: the adjective before a noun that is not a body ("a slim figure")
    r"\bslim\s+(?:chance|odds|hope|pickings|margin)\b",
    r"\b(?:a|the|that|this|those|these)\s+slim(?:mer|mest)?\s+(?!figure|body|waist|build|frame|physique|"
    r"version\s+of\s+you|you)(?:\w+\s+)?(?:"
    + _FOOD_WORDS
    + r"|batards?|shapes?|logs?|ropes?|strands?|pans?|tins?)\b",
    # earning something that is not money ("earn an ear", "earned a spot")
    r"\bearn(?:s|ed|ing)?\s+(?:a|an|the|that|this|your|my|its|their)\s+(?:\w+\s+)?(?:ear|ears|crust|spot|place|"
    r"title|badge|reputation|rise|name|trust|respect|stripes|blue\s+ribbon|ribbon|bloom|grigne|nickname)\b",
    # voting in the creator's own poll
    r"\bvot(?:e|es|ed|ing)\s+(?:for|on)\s+(?:the\s+|your\s+|my\s+|our\s+|a\s+|next\s+)?(?:[\w']+\s+){0,6}?"
    r"(?:bake|bread|loaf|recipe|flavou?r|video|poll|topic|winner|favou?rite|entry|entries|contest|challenge)s?\b",
    # Spanish "son" (they are)
    r"\b(?:que|los|las|ellos|ellas|cu[aá]les|estos|estas|esos|esas|mis|tus|sus|no|ya|tambi[eé]n|"
    r"favorit[oa]s?|mejores|preferid[oa]s?)\s+son\b",
    r"\bson\s+(?:los|las|muy|m[aá]s|de|del|mis|tus|sus|un|una|unos|unas|buen[oa]s|mejores|para|tan|bastante|"
    r"perfect[oa]s|delicios[oa]s|f[aá]ciles|ric[oa]s|iguales|diferentes)\b",
)
_SENSES += (
    # what a loaf loses in the oven, a recipe fit for children
    r"\b"
    + _FOOD
    + r"\s+(?:\w+\s+)?(?:lose|loses|lost|losing|gain|gains|gained|keep|keeps)\s+(?:\w+\s+){0,4}?weight\b",
    r"\b(?:its|their)\s+(?:\w+\s+)?weight\b",
    r"\bkid(?:s|die)?[\s-]+(?:friendly|safe|approved|sized?|proof)\b",
    # children as a class's or a shop's guests ("kids' classes", "kids in your workshop")
    r"\bkids(?:'|’)?\s+(?:class(?:es)?|camps?|menu|workshops?|sessions?|version|size|portions?|parties|party|"
    r"recipes?|cookbooks?|books?|baking\s+class(?:es)?)\b",
    r"\bkids\s+(?:in|at|to|into)\s+(?:your|the|a)\s+(?:class(?:es)?|workshops?|camps?|market|shop|sessions?|kitchen\s+class)\b",
)
BENIGN_SENSES = re.compile("|".join(f"(?:{p})" for p in _SENSES))
"""The everyday senses of keywords, as one regex over normalised text."""

# A fan telling of their own family ("my kids loved your rolls", "baking with my son", "mis
# hijos"): the creator's family is the topic, the fan's is not. Only for the fan's message: in a
# reply the same words are the creator's claim.
FAN_OWN = re.compile(
    r"\bi(?:'m|\s+am)\s+(?:\w+\s+)?(?:pregnant|expecting|embarazada|enceinte|schwanger|incinta|grávida)\b|"
    r"\b(?:my|our|mi|mis|mes|mon|ma|mein|meine|meinen|meinem|meiner|unser|unsere|unseren|mio|mia|miei|mie|meu|"
    r"minha|meus|minhas|nuestros?|nuestras?|nos|notre)\s+(?:(?:\w+[\s-]){0,2}?(?:year[\s-]olds?|little|two|three|"
    r"four|older|younger|eldest|youngest|oldest|teenage|grown|own|twin|baby|new|sweet)\s+)?"
    r"(?:kids?|kiddos?|children|child|sons?|daughters?|toddlers?|little\s+ones?|babies|baby|boys|girls|grandkids|"
    r"grandchildren|grandsons?|granddaughters?|stepkids|stepsons?|stepdaughters?|family|families|pregnancy|"
    r"hijos?|hijas?|niños|ninos|enfants?|fils|kinder|sohn|tochter|figli|figlio|figlia|bambini|filhos?|filhas?)\b"
)
"""A fan's own household in their message, which a family topic's keyword there does not mean."""


def benign_spans(text: str, *, message: bool = False) -> list[tuple[int, int]]:
    """Spans of a normalised text where a keyword is used in an everyday sense (:data:`BENIGN_SENSES`).

    Args:
        text: Normalised text.
        message: The text is the fan's message, where the fan's own family (:data:`FAN_OWN`) is
            an everyday sense too.
    """
    spans = [m.span() for m in BENIGN_SENSES.finditer(text)]
    if message:
        spans += [m.span() for m in FAN_OWN.finditer(text)]
    return spans


# The same words in other words: a never-claim phrase ("my husband", "I have kids", "married") is
# also said informally ("my hubby", "I've got kiddos") and in the languages fans write in ("mi
# marido", "mon mari", "verheiratet"), and a model answering a fan follows the fan's wording. Each
# word of a never-claim phrase also matches its senses here, word by word, so "my husband" covers
# "my hubby", "mi marido" and "mein Ehemann" alike. Only words that mean nothing else in a creator's
# reply are listed ("Mann", "mujer", "fille" also mean man, woman and girl; "copain" a friend).
CLAIM_SENSES: dict[str, tuple[str, ...]] = {
    "my": ("mi", "mis", "mon", "ma", "mes", "mein", "meine", "meinen", "meinem", "meu", "minha", "meus",
           "minhas", "mio", "mia", "miei", "mie"),
    "have": ("'ve got", "got"),
    "i'm": ("i am", "im"),
    "husband": ("hubby", "hubbie", "hubs", "spouse", "other half", "better half", "marido", "esposo", "mari",
                "ehemann", "ehegatte", "marito"),
    "wife": ("wifey", "missus", "missis", "spouse", "other half", "better half", "esposa", "épouse",
             "ehefrau", "moglie"),
    "boyfriend": ("bf", "beau", "novio", "namorado", "petit ami", "fidanzato"),
    "girlfriend": ("gf", "novia", "namorada", "petite amie", "freundin", "fidanzata"),
    "kids": ("kiddos", "kiddies", "little ones", "children", "hijos", "niños", "filhos", "enfants", "figli",
             "bambini", "kinder"),
    "children": ("kids", "kiddos", "kiddies", "little ones", "hijos", "niños", "filhos", "enfants", "figli",
                 "bambini", "kinder"),
    "son": ("hijo", "filho", "fils", "sohn", "figlio"),
    "daughter": ("hija", "filha", "tochter", "figlia"),
    "pregnant": ("expecting a baby", "expecting a child", "with child", "embarazada", "grávida", "gravida",
                 "enceinte", "schwanger", "incinta"),
    "married": ("hitched", "casada", "casado", "mariée", "verheiratet", "sposata", "sposato"),
    "doctor": ("physician", "médico", "médica", "médecin", "arzt", "ärztin"),
    "nutritionist": ("dietitian", "dietician", "nutricionista", "nutritionniste"),
}  # fmt: skip
"""Other words for the words of never-claim phrases (``checks.py`` matches them word by word)."""
