"""The one grouping component: batches of at most ten per key, bounded, oldest evicted first."""

from __future__ import annotations

from aiopersonalize_events._batching import Grouper


def test_full_group_is_returned_at_the_tenth_record() -> None:
    """A key's group comes back as a batch exactly when it holds ``size`` records."""
    g: Grouper[str, int] = Grouper(size=10)
    for i in range(9):
        assert g.add("a", i) == ()
    assert g.add("a", 9) == (("a", list(range(10))),)
    assert len(g) == 0
    assert g.groups == 0


def test_keys_are_grouped_separately_and_cut_oldest_first() -> None:
    """Records of different keys never share a batch; cut() empties the grouper in first-seen order."""
    g: Grouper[tuple[str, str | None], str] = Grouper(size=3)
    g.add(("s1", None), "a")
    g.add(("s2", "u"), "b")
    g.add(("s1", None), "c")
    assert len(g) == 3
    assert g.cut() == [(("s1", None), ["a", "c"]), (("s2", "u"), ["b"])]
    assert len(g) == 0
    assert g.cut() == []


def test_cap_evicts_the_oldest_group_as_a_batch() -> None:
    """Past max_records held, the oldest group is cut early and returned, so memory stays bounded."""
    g: Grouper[int, int] = Grouper(size=10, max_records=3)
    assert g.add(1, 10) == ()
    assert g.add(2, 20) == ()
    assert g.add(1, 11) == ()
    assert g.add(3, 30) == [(1, [10, 11])]
    assert len(g) == 2
    assert g.cut() == [(2, [20]), (3, [30])]


def test_many_keys_hold_at_most_the_cap() -> None:
    """A million distinct keys never hold more than the cap; every record comes out exactly once."""
    g: Grouper[int, int] = Grouper(size=10, max_records=100)
    out: list[int] = []
    for i in range(10_000):
        for _, batch in g.add(i, i):
            out.extend(batch)
        assert len(g) <= 100
    for _, batch in g.cut():
        out.extend(batch)
    assert sorted(out) == list(range(10_000))


def test_pop_oldest_takes_the_oldest_record() -> None:
    """pop_oldest() returns the first record of the oldest group and keeps the count right."""
    g: Grouper[str, int] = Grouper(size=10)
    assert g.pop_oldest() is None
    g.add("a", 1)
    g.add("b", 2)
    g.add("a", 3)
    assert g.pop_oldest() == ("a", 1)
    assert g.pop_oldest() == ("a", 3)
    assert g.pop_oldest() == ("b", 2)
    assert len(g) == 0
    assert g.groups == 0
