import pytest

from inventory import Stock


def test_add_and_remove_track_the_level():
    stock = Stock()
    assert stock.add("A-1", 5) == 5
    assert stock.add("A-1", 2) == 7
    assert stock.remove("A-1", 3) == 4
    assert stock.quantity("A-1") == 4
    assert stock.quantity("missing") == 0


def test_cannot_remove_more_than_on_hand():
    stock = Stock()
    stock.add("A-1", 1)
    with pytest.raises(ValueError, match="only 1 of A-1"):
        stock.remove("A-1", 2)


def test_quantities_must_be_positive():
    with pytest.raises(ValueError):
        Stock().add("A-1", 0)


def test_skus_lists_only_items_in_stock():
    stock = Stock()
    stock.add("B-2", 1)
    stock.add("A-1", 1)
    stock.remove("B-2", 1)
    assert stock.skus() == ["A-1"]
