"""Identity masking: what a judge reads (and what an author reads back about its reviews) never says who wrote it.

A draft that names its author ("As the Physicist…", "The Financier: …", "in physics we say…") lets a clique find
its members' drafts in a blind review. :func:`mask_identities` replaces every persona name and discipline of the
book — in any case, any inflection, multi-word or not — by a neutral token: agent words (names and ``-ist``,
``-ian``, ``-er``… forms) become ``[author]``, field words (``physics``, ``physical``, ``economy``…) ``[field]``.

The inflection rule, for each word of a name or discipline (casefolded, NFKC):

* the *stem* is the word with its longest known suffix (``-ologist``, ``-icist``, ``-ician``, ``-ist``, ``-ian``,
  ``-ics``, ``-ic``, ``-er``, ``-ier``, ``-y``, ``-e``, ``-s``…) removed, if at least ``MIN_STEM`` (4) letters
  remain, else the word itself (``Art`` stays ``art``);
* a text word is masked when it is the word itself (± plural ``s``/``es``) or the stem followed by one of
  ``SUFFIXES`` (``physics``, ``physical``, ``physicists``, ``physician`` from ``Physicist``/``Physics``);
* a word matches only as a whole word: not preceded or followed by a letter (digits and ``_`` separate words, so
  ``Physicist_2`` is masked too); a multi-word name also matches as a phrase, its words joined by spaces, ``-``,
  ``_`` or ``.``; words shorter than 3 letters and particles (``of``, ``the``, ``Dr``…) are masked only as part of
  the whole phrase.

Disguises are undone first: NFKC (full-width letters), invisible and BiDi characters removed, Cyrillic and Greek
look-alike letters folded to Latin inside words that mix scripts (``Рhysicist``), and names spelled out letter by
letter (``P h y s i c i s t``, ``P.h.y.s.i.c.s``) masked as a whole.

The rule over-masks on purpose (``physician`` and ``politely`` may go too): a masked word costs a judge little, a
leaked name costs the tournament its blindness. Pure and cached: one compiled pattern per set of identities.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

AUTHOR_TOKEN = "[author]"
FIELD_TOKEN = "[field]"

MIN_STEM = 4
"""A suffix is stripped only if this many letters remain (``Chemist`` → ``chem``; ``Artist`` stays ``artist``)."""

MIN_WORD = 3
"""Shorter words of a multi-word name are masked only inside the whole phrase."""

PARTICLES = frozenset(
    {"the", "and", "of", "for", "von", "van", "der", "den", "des", "del", "della", "mrs", "miss", "saint"}
)
"""Words of a name never masked on their own."""

_STRIP: tuple[str, ...] = tuple(sorted(
    {"ologists", "ologist", "ological", "ology", "icians", "ician", "icists", "icist", "ically", "istics", "istic",
     "istry", "ists", "ist", "ians", "ian", "ical", "ics", "ic", "ers", "er", "iers", "ier", "ors", "or", "ies", "y",
     "ism", "al", "es", "s", "e", "ive", "ion", "ing"},
    key=len, reverse=True,
))  # fmt: skip
"""Suffixes removed from a name word to find its stem (longest first)."""

SUFFIXES: tuple[str, ...] = tuple(sorted(
    {"", "s", "es", "y", "ies", "ry", "ries", "ist", "ists", "istic", "istics", "istry", "ian", "ians", "ic", "ics",
     "ical", "ically", "icist", "icists", "ician", "icians", "al", "ally", "er", "ers", "ier", "iers", "or", "ors",
     "ial", "ially", "ing", "ism", "isms", "ure", "ures", "ural", "ology", "ologies", "ologist", "ologists", "ological",
     "ologically", "ive", "ion", "ions"},
    key=len, reverse=True,
))  # fmt: skip
"""Endings a stem may take in a text to count as the name word (``phys`` + ``icists``)."""

_AGENT_ENDINGS = ("ist", "ists", "ian", "ians", "er", "ers", "ier", "iers", "or", "ors")
"""A matched word with one of these endings (or a whole name) names a person: ``[author]``; else ``[field]``."""

_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]")  # fmt: skip
"""Zero-width, joiner, soft-hyphen, variation-selector and BiDi control characters: invisible to a reader, but they
would split a name so the pattern misses it while a model still reads it."""

_CONFUSABLE = str.maketrans(
    "АВЕКМНОРСТХаеорсухіјѕԁԛԝҮӀΑΒΕΖΗΙΚΜΝΟΡΤΥΧαεικνορτυχ",
    "ABEKMHOPCTXaeopcyxijsdqwYIABEZHIKMNOPTYXaeiknoptux",
)
"""Cyrillic and Greek letters drawn like Latin ones (``Рhysicist`` with a Cyrillic Р), folded to Latin — only inside
a word that mixes them with Latin letters, so text written in Cyrillic or Greek is left as it is."""

_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .·*_-]){3,}[^\W\d_](?![^\W\d_])")
"""Four or more single letters each followed by one separator: ``P h y s i c i s t``, ``P.h.y.s.i.c.s``."""

_LETTERS = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[A-Za-z]")
_BEFORE = r"(?<![^\W\d_])"
_AFTER = r"(?![^\W\d_])"


def normalise(text: str) -> str:
    """NFKC (full-width and compatibility letters → plain) with invisible and BiDi control characters removed."""
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))


def _fold(word: str) -> str:
    return normalise(word).casefold()


def stem(word: str) -> str:
    """The stem of one (casefolded) name word: its longest known suffix removed if ``MIN_STEM`` letters remain."""
    w = _fold(word)
    for suffix in _STRIP:
        if w.endswith(suffix) and len(w) - len(suffix) >= MIN_STEM:
            return w[: -len(suffix)]
    return w


def _words(identity: str) -> list[str]:
    return _LETTERS.findall(_fold(identity))


def _alternatives(identities: Iterable[str]) -> list[str]:
    phrases: set[str] = set()
    stems: set[str] = set()
    whole: set[str] = set()
    for identity in identities:
        words = _words(identity)
        if not words:
            continue
        if len(words) > 1:
            phrases.add(r"[\s\-_.]+".join(re.escape(w) for w in words) + "(?:s|es)?")
        for w in words:
            if len(w) < MIN_WORD or w in PARTICLES:
                continue
            whole.add(re.escape(w) + "(?:s|es)?")
            stems.add(stem(w))
    suffixes = "|".join(re.escape(s) for s in SUFFIXES if s)
    stem_alts = [f"{re.escape(s)}(?:{suffixes})?" for s in sorted(stems, key=len, reverse=True)]
    return [*sorted(phrases, key=len, reverse=True), *sorted(whole, key=len, reverse=True), *stem_alts]


@functools.lru_cache(maxsize=256)
def _pattern(identities: frozenset[str], absorb_article: bool) -> re.Pattern[str] | None:
    alts = _alternatives(identities)
    if not alts:
        return None
    article = r"(?:the\s+)?" if absorb_article else ""
    return re.compile(rf"{_BEFORE}{article}(?P<w>{'|'.join(alts)}){_AFTER}", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _names(names: frozenset[str]) -> frozenset[str]:
    """Every whole name and every word of a name, folded: a match equal to one of these is an author."""
    return frozenset(" ".join(_words(n)) for n in names) | {w for n in names for w in _words(n)}


def mask_identities(
    text: str,
    names: Iterable[str],
    disciplines: Iterable[str] = (),
    *,
    author: str = AUTHOR_TOKEN,
    field: str = FIELD_TOKEN,
    absorb_article: bool = False,
) -> str:
    """``text`` (normalised, see :func:`normalise`) with every persona name and discipline masked.

    ``names`` and ``disciplines`` are treated alike (a discipline's agent form ``physicist`` is a name, a name's
    field form ``physics`` is a field): a matched word that is a whole name or ends like an agent noun
    (``-ist``, ``-ian``, ``-er``, ``-or`` and plurals) becomes ``author``, any other ``field``. With
    ``absorb_article`` a preceding ``the`` goes too (``the Physicist`` → ``an author`` in memory notes).
    """
    name_set = frozenset(n for n in names if n and n.strip())
    identities = name_set | frozenset(d for d in disciplines if d and d.strip())
    out = normalise(text)
    pattern = _pattern(identities, absorb_article) if identities else None
    if pattern is None:
        return out
    whole = _names(name_set)

    def token(m: re.Match[str]) -> str:
        word = " ".join(_words(m.group("w")))
        if word in whole or word.removesuffix("s") in whole or word.endswith(_AGENT_ENDINGS):
            return author
        return field

    def undone(disguised: str, plain: str) -> str:
        masked = pattern.sub(token, plain)
        return masked if masked != plain else disguised

    def unmixed(m: re.Match[str]) -> str:
        word = m.group(0)
        if word.isascii() or not _LATIN.search(word):
            return word
        return undone(word, word.translate(_CONFUSABLE))

    def spaced(m: re.Match[str]) -> str:
        return undone(m.group(0), "".join(_LETTERS.findall(m.group(0))))

    out = _LETTERS.sub(unmixed, _SPACED.sub(spaced, out))
    return pattern.sub(token, out)


def leaked(text: str, names: Iterable[str], disciplines: Iterable[str] = ()) -> set[str]:
    """The name/discipline words (3+ letters, not particles) that still occur as whole words in ``text``
    (case-insensitively, after normalisation): empty for a masked text. For tests and assertions."""
    found: set[str] = set()
    folded = _fold(text)
    for identity in (*names, *disciplines):
        for w in _words(identity):
            if len(w) >= MIN_WORD and w not in PARTICLES and re.search(rf"{_BEFORE}{re.escape(w)}{_AFTER}", folded):
                found.add(w)
    return found
