"""Chapter titles from drafts (``rules.canon.split_title``): what the embedded 135M model actually wrote."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spacetime.rules.canon import TITLE_MAX, split_title


def test_an_echoed_prompt_marker_is_never_a_title() -> None:
    # epoch 2 of a README-command run (285a14f and 5164fc3): the chapter was titled "<<NOTES>>"
    assert split_title("<<NOTES>>\nThe Clock\nTime ticks.", 2) == ("The Clock", "Time ticks.")
    assert split_title("  <<BEGINED TO WRITE SUBSTITUTE>>  \n\nEntropy\nHeat flows.", 3) == ("Entropy", "Heat flows.")
    assert split_title("<<NOTES>>", 4) == ("Chapter 4", "<<NOTES>>")


def test_titles_as_before() -> None:
    assert split_title("Chapter 2: The Arrow\nBody.", 2) == ("The Arrow", "Body.")
    assert split_title("One long paragraph with no title line at all.", 5)[0] == "Chapter 5"
    assert split_title("Title: <<not a marker>> here\nBody", 1) == ("<<not a marker>> here", "Body")


@given(st.text(max_size=400), st.integers(1, 99))
def test_a_title_is_short_and_never_a_marker(text: str, n: int) -> None:
    title, _body = split_title(text, n)
    assert 0 < len(title) <= max(TITLE_MAX, len(f"Chapter {n}"))
    assert not (title.startswith("<<") and title.endswith(">>") and title.count("<<") == 1)
