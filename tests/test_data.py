import numpy as np
import pytest

from svt.data.utterances import SongStitcher


def frames(values):
    a = np.asarray(values, dtype=float)
    return (a, a + 0.5, a.astype(int), a.astype(int))


def test_stitcher_orders_utterances_whatever_the_arrival_order():
    stitcher = SongStitcher()
    assert stitcher.add("d/a", 2, 3, frames([3, 4])) is None
    assert stitcher.add("d/b", 1, 1, frames([9]))[0] == "d/b"
    assert stitcher.add("d/a", 3, 3, frames([5])) is None
    key, stitched = stitcher.add("d/a", 1, 3, frames([1, 2]))
    assert key == "d/a"
    np.testing.assert_array_equal(stitched[0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(stitched[1], [1.5, 2.5, 3.5, 4.5, 5.5])
    assert stitcher.incomplete() == {}


def test_stitcher_reports_duplicates_and_missing():
    stitcher = SongStitcher()
    stitcher.add("d/a", 1, 2, frames([1]))
    with pytest.raises(ValueError, match="seen twice"):
        stitcher.add("d/a", 1, 2, frames([1]))
    assert stitcher.incomplete() == {"d/a": [1]}
