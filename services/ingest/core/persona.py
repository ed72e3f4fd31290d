"""The creator's writing style, computed from their documents: what the prompt's persona uses.

Everything here is counting, deliberately: the profile must be explainable to the creator, who
reads and corrects it. Counts are document frequencies (in how many documents a term occurs), so
one long transcript cannot dominate a profile built from hundreds of posts.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.ingest.core.chunker import split_sentences

TOP = 10
_WORD_RE = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
_HASHTAG_RE = re.compile(r"(?<![\w#])#(\w*[^\W\d_]\w*)", re.UNICODE)  # "#2" is a number, not a tag
_URL_RE = re.compile(r"https?://\S+")
_MENTION_RE = re.compile(r"(?<!\w)@\w+")
_TIMESTAMP_RE = re.compile(r"^\[\d{1,2}:\d{2}(?::\d{2})?\]\s*")
# Emoji: pictographs, symbols and flags; a ZWJ sequence or a skin-tone variant counts as one emoji.
_EMOJI_RE = re.compile(
    "(?:[\U0001f1e6-\U0001f1ff]{2}"
    "|[\U0001f300-\U0001faff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff]"
    "[\ufe0f\U0001f3fb-\U0001f3ff]*(?:\u200d[\U0001f300-\U0001faff\u2600-\u27bf][\ufe0f\U0001f3fb-\U0001f3ff]*)*)"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "a about after all also always am an and any are as at be because been but by can could did do "
        "does don't don’t every for from get got had has have he her here him his how i i'm if in into is "
        "it it's its it’s i’m just let's like me more much my never no not now of off on one only or our "
        "out over really so some than that that's the their them then there these they this to too up us "
        "very was we were what when where which who why will with would you you're your "
    ),
    "es": _words("al como con de del el en es la las lo los mi no para pero por que se su un una y "),
    "fr": _words("avec de des du elle en est et il je la le les pas pour que qui sur tu un une "),
    "de": _words("auf das dem den der die du ein eine er für ich ist mit nicht sie und von zu "),
    "pt": _words("a as com da de do e em eu mais não o os para por que se um uma você é "),
    "it": _words("anche che con da di e gli il la le lo mi non per si sono ti un una è "),
}
_ALL_STOPWORDS = frozenset().union(*_STOPWORDS.values())
# First-person statements of fact. Deliberately narrow: a wrong "fact" in the persona is worse than a
# missing one, and the creator can add what the patterns miss.
_NEVER_RE = re.compile(
    r"\bI\s+(?:never|don['’]t ever|do not ever|will never|won['’]t ever|would never|refuse to)\b", re.I
)
_OWNS_RE = re.compile(
    r"\b(?:I\s+(?:own|have owned|bought|drive|have (?:a|an|one|two|three|my))|my\s+\w+\s+is)\b", re.I
)
_DOES_RE = re.compile(
    r"\bI(?:['’]m| am)\s+(?:a|an)\s+\w+"
    r"|\bI\s+(?:teach|run|bake|cook|make|coach|write|host|film|train|work|live)\b",
    re.I,
)


@dataclass(frozen=True)
class SourceText:
    """One document's text and where it came from (facts cite it)."""

    text: str
    platform: str
    external_id: str


@dataclass(frozen=True)
class Fact:
    """A statement the creator made about themselves."""

    kind: str
    """``"owns"``, ``"does"`` or ``"never"``."""
    text: str
    platform: str
    external_id: str


@dataclass(frozen=True)
class StyleProfile:
    """How a creator writes. See the proto ``avatar.v1.PersonaProfile`` for each field's meaning."""

    documents: int = 0
    mean_sentence_words: float = 0.0
    median_sentence_words: float = 0.0
    emoji_per_post: float = 0.0
    top_emoji: list[tuple[str, int]] = field(default_factory=list)
    hashtags_per_post: float = 0.0
    top_hashtags: list[tuple[str, int]] = field(default_factory=list)
    signature_phrases: list[tuple[str, int]] = field(default_factory=list)
    topics: list[tuple[str, int]] = field(default_factory=list)
    languages: list[tuple[str, float]] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)


def detect_language(words: list[str]) -> str | None:
    """ISO 639-1 code of the language whose stop words the text uses most, or ``None`` if too few."""
    counts = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    lang, best = max(counts.items(), key=lambda kv: kv[1])
    return lang if best >= 2 else None


def _top(counter: Counter[str], n: int = TOP, minimum: int = 1) -> list[tuple[str, int]]:
    # Ties broken by the term so the profile is deterministic.
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(term, count) for term, count in ranked if count >= minimum][:n]


def compute_profile(sources: Iterable[SourceText], max_facts: int = 50) -> StyleProfile:
    """Compute the style profile of a creator from their documents.

    Args:
        sources: Every document of the creator (replies included: they are the creator's words too).
        max_facts: Most stated facts kept, in document order.

    Returns:
        The profile; all zeros and empty lists for no documents.
    """
    sentence_words: list[int] = []
    emoji_docs: Counter[str] = Counter()
    hashtag_docs: Counter[str] = Counter()
    phrase_docs: Counter[str] = Counter()
    topic_docs: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    emoji_total = hashtag_total = docs = 0
    facts: list[Fact] = []
    seen_facts: set[str] = set()
    for source in sources:
        docs += 1
        text = source.text
        emoji = _EMOJI_RE.findall(text)
        emoji_total += len(emoji)
        emoji_docs.update(set(emoji))
        tags = [t.lower() for t in _HASHTAG_RE.findall(text)]
        hashtag_total += len(tags)
        hashtag_docs.update({f"#{t}" for t in tags})
        plain = _MENTION_RE.sub(" ", _HASHTAG_RE.sub(" ", _URL_RE.sub(" ", text)))
        doc_words: list[str] = []
        doc_phrases: set[str] = set()
        for start, end in split_sentences(plain):
            sentence = _TIMESTAMP_RE.sub("", plain[start:end])
            words = [w.lower() for w in _WORD_RE.findall(sentence)]
            if not words:
                continue
            sentence_words.append(len(words))
            doc_words.extend(words)
            for n in (3, 4):
                for i in range(len(words) - n + 1):
                    gram = words[i : i + n]
                    # A phrase made of stop words only ("and it is") says nothing about the creator.
                    if any(w not in _ALL_STOPWORDS for w in gram):
                        doc_phrases.add(" ".join(gram))
            _collect_fact(sentence.strip(), source, facts, seen_facts, max_facts)
        phrase_docs.update(doc_phrases)
        topic_docs.update({w for w in doc_words if w not in _ALL_STOPWORDS and len(w) > 2})
        lang = detect_language(doc_words)
        if lang is not None:
            languages[lang] += 1
    if docs == 0:
        return StyleProfile()
    language_total = sum(languages.values())
    return StyleProfile(
        documents=docs,
        mean_sentence_words=round(statistics.fmean(sentence_words), 2) if sentence_words else 0.0,
        median_sentence_words=float(statistics.median(sentence_words)) if sentence_words else 0.0,
        emoji_per_post=round(emoji_total / docs, 3),
        top_emoji=_top(emoji_docs),
        hashtags_per_post=round(hashtag_total / docs, 3),
        top_hashtags=_top(hashtag_docs),
        # A signature phrase is one the creator comes back to: in at least two documents.
        signature_phrases=_top(phrase_docs, minimum=2),
        topics=_top(topic_docs, n=20),
        languages=[(lang, round(n / language_total, 3)) for lang, n in _top(languages)],
        facts=facts,
    )


def _collect_fact(sentence: str, source: SourceText, facts: list[Fact], seen: set[str], limit: int) -> None:
    if len(facts) >= limit or not sentence:
        return
    # One sentence can state several facts: "I own one Dutch oven and I never buy bread".
    for kind, pattern in (("owns", _OWNS_RE), ("does", _DOES_RE), ("never", _NEVER_RE)):
        key = f"{kind}:{sentence.lower()}"
        if pattern.search(sentence) and key not in seen and len(facts) < limit:
            seen.add(key)
            facts.append(Fact(kind, sentence, source.platform, source.external_id))
