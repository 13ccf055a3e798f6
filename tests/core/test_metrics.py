import pytest

from lokirl.core.metrics import Tally, effective_accuracy


def test_effective_accuracy_counts_dropped_and_late_frames_as_zero():
    # 10 arrived: 6 on time (mean accuracy 90), 1 late, 3 dropped.
    t = Tally(arrived=10, on_time=6, late=1, dropped={"deadline": 3}, accuracy_sum=540.0)
    assert t.accuracy == pytest.approx(90.0)
    assert t.effective_accuracy == pytest.approx(54.0)
    assert t.effective_accuracy < t.accuracy
    assert t.effective_accuracy == pytest.approx(t.accuracy * t.on_time / t.arrived)
    d = t.to_dict()
    assert d["effective_accuracy"] == pytest.approx(54.0)
    assert d["accuracy"] == pytest.approx(90.0)


def test_effective_accuracy_edge_cases():
    assert Tally().effective_accuracy == 0.0
    # Nothing dropped or late: the same as the accuracy.
    full = Tally(arrived=4, on_time=4, accuracy_sum=380.0)
    assert full.effective_accuracy == pytest.approx(full.accuracy) == pytest.approx(95.0)
    # Requests still in flight count 0 as well.
    assert Tally(arrived=4, on_time=2, in_flight=2, accuracy_sum=200.0).effective_accuracy == 50.0
    assert effective_accuracy(10.0, 0) == 0.0
