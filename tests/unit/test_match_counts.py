"""The remembered counts of search filters: the count that reaches furthest is kept, old filters are dropped."""

from __future__ import annotations

from models.match_counts import NOTHING_COUNTED, Counted, MatchCounts


def test_an_unknown_filter_has_nothing_counted() -> None:
    assert NOTHING_COUNTED == MatchCounts().get(("WHERE e.layer = ?", "qdrive"))


def test_a_count_that_reaches_less_far_does_not_replace_a_further_one() -> None:
    counts = MatchCounts()
    counts.put("layer", Counted(matches=40, below=300))
    counts.put("layer", Counted(matches=30, below=200))  # a slower search that started earlier
    assert Counted(40, 300) == counts.get("layer")


def test_the_least_recently_searched_filter_is_dropped_beyond_the_limit() -> None:
    counts = MatchCounts(max_filters=2)
    counts.put("a", Counted(1, 10))
    counts.put("b", Counted(2, 10))
    counts.get("a")
    counts.put("c", Counted(3, 10))
    assert [Counted(1, 10), NOTHING_COUNTED, Counted(3, 10)] == [counts.get(key) for key in "abc"]
