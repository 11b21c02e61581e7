"""Identity masking: every persona name and discipline, in any case or inflection, is masked; other words stay."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.personas import builtin_personas
from spacetime.rules.masking import AUTHOR_TOKEN, FIELD_TOKEN, leaked, mask_identities, normalise, stem
from spacetime.rules.memory import anonymize

LIB = builtin_personas()
NAMES = [p.name for p in LIB] + ["Dr. Ada Lovelace", "Cognitive Scientist"]
DISCIPLINES = [p.discipline for p in LIB] + ["Cognitive Science"]

# natural English forms an author uses for itself and its field (written by hand, not derived from the rule)
INFLECTED = {
    "Physicist": ["physicist", "physicists", "physics", "physical", "physically", "physicist's"],
    "Financier": ["financier", "financiers", "finance", "finances", "financial", "financially"],
    "Politician": ["politician", "politicians", "politics", "political", "politically"],
    "Mathematician": ["mathematician", "mathematicians", "mathematics", "mathematical", "mathematically"],
    "Technologist": ["technologist", "technologists", "technology", "technologies", "technological"],
    "Cyberneticist": ["cyberneticist", "cyberneticists", "cybernetics", "cybernetic"],
    "Philosopher": ["philosopher", "philosophers", "philosophy", "philosophical", "philosophies"],
    "Biologist": ["biologist", "biologists", "biology", "biological"],
    "Historian": ["historian", "historians", "history", "histories", "historical"],
    "Economist": ["economist", "economists", "economics", "economy", "economic", "economical"],
    "Chemist": ["chemist", "chemists", "chemistry", "chemical"],
    "Artist": ["artist", "artists", "art", "arts", "artistic"],
    "Dr. Ada Lovelace": ["Dr. Ada Lovelace", "Ada Lovelace", "Lovelace", "ada", "dr-ada-lovelace"],
}
PROSE = ["The river kept its own time", "a clock", "and yet", "Cartographer", "polite", "artery", "timeless"]


def _case(text: str, style: int) -> str:
    return [text, text.upper(), text.lower(), text.title(), text.swapcase()][style % 5]


def test_hand_written_inflections_are_masked() -> None:
    for forms in INFLECTED.values():
        for form in forms:
            for style in range(5):
                masked = mask_identities(f"As the {_case(form, style)}, I write.", NAMES, DISCIPLINES)
                assert leaked(masked, NAMES, DISCIPLINES) == set(), (form, masked)
                assert AUTHOR_TOKEN in masked or FIELD_TOKEN in masked


def test_tokens_say_author_or_field() -> None:
    text = "As the Physicist, I hold that physics is physical; The Financier: finance. Physicists agree."
    assert mask_identities(text, NAMES, DISCIPLINES) == (
        "As the [author], I hold that [field] is [field]; The [author]: [field]. [author] agree."
    )
    assert mask_identities("Dr. Ada Lovelace and cognitive science", NAMES, DISCIPLINES) == "[author] and [field]"


def test_obfuscated_names_are_masked() -> None:
    for text in ["Phys\u200bicist", "\uff30\uff48\uff59\uff53\uff49\uff43\uff53", "Physi\u00adcist", "PHYSICIST_2",
                 "physicist2", "\u202ePhysicist\u202c"]:  # fmt: skip
        assert leaked(mask_identities(text, NAMES, DISCIPLINES), NAMES, DISCIPLINES) == set(), text


def test_look_alike_letters_and_spelled_out_names_are_masked() -> None:
    cyrillic_p, greek_o = "\u0420", "\u03bf"  # Р and ο, drawn like P and o
    for text in [f"As the {cyrillic_p}hysicist", f"Phil{greek_o}sopher", "P h y s i c i s t", "P.h.y.s.i.c.s",
                 "the F-i-n-a-n-c-i-e-r says", "H_i_s_t_o_r_i_a_n"]:  # fmt: skip
        masked = mask_identities(text, NAMES, DISCIPLINES)
        assert AUTHOR_TOKEN in masked or FIELD_TOKEN in masked, (text, masked)
        assert leaked(masked.translate({ord(cyrillic_p): "P", ord(greek_o): "o"}), NAMES, DISCIPLINES) == set()
    # text in Cyrillic or Greek, and spaced-out letters that spell no name, are left as they are
    for text in ["\u0424\u0438\u0437\u0438\u043a \u043f\u0438\u0448\u0435\u0442", "a b c d e f", "I a m ok",
                 f"{cyrillic_p}aris"]:  # fmt: skip
        assert mask_identities(text, NAMES, DISCIPLINES) == text


def test_stems() -> None:
    assert stem("Physicist") == stem("Physics") == "phys"
    assert stem("Economist") == stem("Economics") == "econom"
    assert stem("Art") == "art" and stem("Artist") == "artist"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(sorted(INFLECTED)), st.integers(0, 10), st.integers(0, 4)).map(
                lambda t: _case(INFLECTED[t[0]][t[1] % len(INFLECTED[t[0]])], t[2])
            ),
            st.sampled_from(PROSE),
        ),
        max_size=12,
    ),
    st.sampled_from([" ", ", ", "\n", "; ", " — ", "'s ", "_"]),
)
def test_no_name_or_discipline_survives_masking(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    masked = mask_identities(text, NAMES, DISCIPLINES)
    assert leaked(masked, NAMES, DISCIPLINES) == set()
    assert mask_identities(masked, NAMES, DISCIPLINES) == masked  # idempotent


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "Zs"]), max_size=60))
def test_text_without_names_is_kept(text: str) -> None:
    if leaked(text, NAMES, DISCIPLINES):
        return
    masked = mask_identities(text, NAMES, DISCIPLINES)
    if AUTHOR_TOKEN not in masked and FIELD_TOKEN not in masked:
        assert masked == normalise(text)


def test_ordinary_words_are_kept() -> None:
    for word in PROSE:
        assert mask_identities(word, NAMES, DISCIPLINES) == word


def test_memory_notes_mask_the_same_way() -> None:
    rationale = "Anonymous_Scribe_3 is physical, says the Physicist; PHYSICISTS and economists agree."
    out = anonymize(rationale, "Anonymous_Scribe_3", ["Anonymous_Scribe_3"], ["Physicist", "Economist"])
    assert out == "your draft is a field, says an author; an author and an author agree."
    assert leaked(out, ["Physicist", "Economist"]) == set()
