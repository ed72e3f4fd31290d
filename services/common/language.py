"""Which language a short text is written in, as far as grounding and retrieval need to know.

The creator's posts are in one language (English for the samples); a fan may write, and the model
answer, in another. Words of such a reply cannot be matched with the evidence's, but its numbers
and names can, and they can also find the passages that state them.
"""

from __future__ import annotations

import re

from services.common.gloss import gloss

# Function words of the languages fans write in besides English: a sentence made of these, and few
# English ones, is in another language than the creator's posts (all in English here).
_OTHER_FUNCTION_WORDS = frozenset(
    """
    el la los las del que y en un una unos unas con por para mi mis es son lo al se su sus muy más
    pero como está estoy tengo hay le les des du et est une avec pour dans je mon ma mes ce cette qui
    pas sur au aux ne très der die das und ist ich mein meine meinen mit für nicht ein eine im dem
    auf zu bei den dann oder o os as do da em uma com meu minha é não no na eu você il lo gli di
    della è per mio mia non nel nella che sono ho anche te esta este esto estos ese esa yo tu tus
    nuestro nuestra ti nous vous avec sans wir du dich dir sehr auch qué cómo cuánto cuánta cuántos
    cuándo dónde quién cuál soy eres tienes puedes quoi comment combien quel quelle quels pourquoi
    wie wann warum welche welcher welches quanto quanta quantos quantas qual quale
    perché também você vocês está são
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
# Further pronouns, articles and particles that carry no fact in a glossed sentence.
_OTHER_FILLER = _OTHER_FUNCTION_WORDS | frozenset(
    """
    elle on ils elles me lui leur de l d qu quand où par chez ya sí si ja nein él ella nosotros
    ellos ellas cuando donde porque cual er sie uns euch ihr ihm ihn wenn als wo weil dass noch
    schon nur so einen einem einer ele ela nós eles elas quando onde seu sua seus suas já mas io lei
    noi voi loro dove già ci uno um ao aos à às pelo pela a e über aus zum zur vom am ins ans beim
    durch gegen vor nach seit bis
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
    # Spanish opens a question or an exclamation with its own mark: as telling as two words.
    other = sum(w in _OTHER_FUNCTION_WORDS for w in words) + 2 * ("¿" in text or "¡" in text)
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


def english_gloss(sentence: str) -> str:
    """The English words of a sentence in another language, glossed word by word (:mod:`gloss`).

    Function words are dropped and names, numbers and words the glossary lacks are kept, so
    "Je la nourris deux fois par jour" gives "feed twice day": a query the creator's English posts
    can meet, and the words a claim's support is judged on.
    """
    words = gloss(sentence).split()
    return " ".join(w for w in words if w not in _OTHER_FILLER and (w.isalnum() or "'" in w))
