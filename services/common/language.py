"""Which language a short text is written in, as far as grounding and retrieval need to know.

The creator's posts are in one language (English for the samples); a fan may write, and the model
answer, in another. Words of such a reply cannot be matched with the evidence's, but its numbers
and names can, and they can also find the passages that state them.
"""

from __future__ import annotations

import re

# Function words of the languages fans write in besides English: a sentence made of these, and few
# English ones, is in another language than the creator's posts (all in English here).
_OTHER_FUNCTION_WORDS = frozenset(
    """
    el la los las del que y en un una unos unas con por para mi mis es son lo al se su sus muy más
    pero como está estoy tengo hay le les des du et est une avec pour dans je mon ma mes ce cette qui
    pas sur au aux ne très der die das und ist ich mein meine meinen mit für nicht ein eine im dem
    auf zu bei den dann oder o os as do da em uma com meu minha é não no na eu você il lo gli di
    della è per mio mia non nel nella che sono ho anche te esta este esto estos ese esa yo tu tus
    nuestro nuestra ti nous vous avec sans wir du dich dir sehr auch
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_ENGLISH_FUNCTION_WORDS = frozenset(
    """
    the and is are of to in with for my i it that this on at you your was be have has an from
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_LETTERS = re.compile(r"[^\W\d_]+")


_GERMAN_FUNCTION_WORDS = frozenset(
    """
    der die das und ist ich mein meine mit für nicht ein eine im dem auf zu bei
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


def in_other_language(text: str) -> bool:
    """Whether a normalised sentence is written in another language than English."""
    words = _LETTERS.findall(text)
    other = sum(w in _OTHER_FUNCTION_WORDS for w in words)
    english = sum(w in _ENGLISH_FUNCTION_WORDS for w in words)
    return other >= 2 and other > 2 * english


def capitalises_nouns(text: str) -> bool:
    """Whether a normalised sentence reads as German, where every noun is capitalised (so a
    capitalised word there is not a name)."""
    return sum(w in _GERMAN_FUNCTION_WORDS for w in _LETTERS.findall(text)) >= 2


_DETAIL = re.compile(r"\d+(?:[.,:]\d+)*|(?<=[\w,;:]\s)[A-Z][\w'’-]+")


def details_query(sentence: str) -> str:
    """The numbers and capitalised words (not the first) of ``sentence``, as a search query.

    "Uso un forno Brightwell Hearth 30, comprato nel 2021." gives "Brightwell Hearth 30 2021": what
    full-text search can find in posts written in another language.
    """
    return " ".join(m.group(0) for m in _DETAIL.finditer(sentence.strip()))
