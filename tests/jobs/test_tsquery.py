"""Reading a tsquery's printed text back, and the adjacent pairs every match of it must hold."""

from __future__ import annotations

import pytest

from jobs.tsquery import is_one_pair, parse, required_pairs


@pytest.mark.parametrize(
    ("printed", "pairs"),
    [
        ("'daughter' <-> 'lord'", {"daughter lord"}),
        ("'good' <-> 'lord' & !'rome'", {"good lord"}),
        ("'a' <-> 'b' <-> 'c'", {"a b", "b c"}),
        ("'king' <2> 'franc'", set()),  # a stop word between: not side by side
        ("'lord' & !( 'daughter' <-> 'lord' )", set()),  # excluded, so not required
        ("'a' <-> 'b' | 'c'", set()),  # one branch of an or
        ("( 'a' <-> 'b' | 'a' <-> 'b' & 'x' ) & 'y'", {"a b"}),  # both branches need it
        ("'it''s' <-> 'x'", {"it's x"}),
        ("'a':* <-> 'b'", set()),  # a prefix stands for many lexemes
        ("'good-lord' <-> 'good' <-> 'lord'", {"good-lord good", "good lord"}),
        ("", set()),
    ],
)
def test_the_pairs_a_query_requires(printed, pairs):
    assert required_pairs(parse(printed)) == pairs


@pytest.mark.parametrize("printed", ["'a' <->", "( 'a'", "'a' 'b'", "'a' ? 'b'"])
def test_text_that_is_not_a_tsquery_is_refused(printed):
    with pytest.raises(ValueError):
        parse(printed)


def test_only_a_lone_pair_is_answered_by_the_pairs_alone():
    assert is_one_pair(parse("'daughter' <-> 'lord'"))
    assert not is_one_pair(parse("'a' <-> 'b' <-> 'c'"))  # a b and b c, not necessarily a b c
    assert not is_one_pair(parse("'a' <-> 'b' & !'c'"))
    assert not is_one_pair(parse("'a' <2> 'b'")) and not is_one_pair(parse("'a'")) and not is_one_pair(None)
