"""A set of recordings with two voices in it is refused naming the recordings that sound like someone else,
numbered as the admin sent them (it said "more than one speaker" and left the admin to guess which)."""
from __future__ import annotations

import re

import pytest

from adapters.media import decode_audio
from core.errors import BadReference
from RVC.reference import check_reference, limits_for
from tests.speech import speech_clips

pytestmark = pytest.mark.slow


def _clips(lang: str, n: int):
    # the shared English clips are one speaker, the French ones another
    return [decode_audio(p.read_bytes()) for p, _, _ in speech_clips(lang, 4.0)[:n]]


def _named(message: str) -> tuple[list[int], str]:
    found = re.search(r"recordings? ([\d, and]+) (of those just sent|kept earlier)", message)
    assert found, message
    return [int(n) for n in re.findall(r"\d+", found.group(1))], found.group(2)


@pytest.mark.parametrize("english, french", [(2, 2), (4, 4), (3, 1)])
def test_the_recordings_of_the_other_voice_are_named(english, french):
    with pytest.raises(BadReference, match="more than one speaker") as refused:
        check_reference(_clips("en", english) + _clips("fr", french), limits_for("tiny"))
    numbers, where = _named(refused.value.message)
    groups = (list(range(1, english + 1)), list(range(english + 1, english + french + 1)))
    assert where == "of those just sent" and numbers in groups, refused.value.message


def test_recordings_kept_earlier_and_just_sent_are_told_apart():
    kept, sent = _clips("en", 3), _clips("fr", 3)
    with pytest.raises(BadReference, match="more than one speaker") as refused:
        check_reference(kept + sent, limits_for("tiny"), new_from=3)
    numbers, where = _named(refused.value.message)
    assert (numbers, where) in (([1, 2, 3], "of those just sent"), ([1, 2, 3], "kept earlier")), refused.value.message
