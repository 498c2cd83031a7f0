"""Learning / forgetting times and forgetting events on hand-built correctness matrices."""
import numpy as np
import pytest

from utils.metrics.times import forgetting_events, forgetting_time, learning_time

# columns: never learned, learned then forgotten, flapping, learned at the last log, always learned
C = np.array([
    [0, 1, 1, 0, 1],
    [0, 1, 0, 0, 1],
    [0, 0, 1, 0, 1],
    [0, 0, 0, 0, 1],
    [0, 0, 1, 1, 1],
], dtype=bool)


def test_learning_time_hand_built():
    lt = learning_time(C)
    assert lt.logs.tolist() == [5, 5, 4, 4, 0]
    assert lt.horizon == 5 and lt.never.tolist() == [True, True, False, False, False]


def test_forgetting_time_hand_built():
    ft = forgetting_time(C)
    assert ft.logs.tolist() == [0, 2, 5, 5, 5]
    assert ft.never.tolist() == [False, False, True, True, True]


def test_forgetting_events_count_learned_to_not_learned_transitions():
    assert forgetting_events(C).tolist() == [0, 1, 2, 0, 0]


def test_forgetting_events_against_a_loop():
    rng = np.random.default_rng(0)
    c = rng.random((30, 200)) < 0.6
    loop = [sum(c[e, n] and not c[e + 1, n] for e in range(29)) for n in range(200)]
    assert forgetting_events(c).tolist() == loop


def test_times_against_a_loop_on_random_matrices():
    rng = np.random.default_rng(1)
    c = rng.random((12, 500)) < 0.7
    for fn, target in ((learning_time, True), (forgetting_time, False)):
        expected = [next((e for e in range(12) if (c[e:, n] == target).all()), 12) for n in range(500)]
        assert fn(c).logs.tolist() == expected


def test_fractional_epochs_and_horizon():
    # 3 logs per epoch over 2 epochs: log e is the state after (e + 1) / 3 epochs
    c = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=bool)
    ft = forgetting_time(c, logs_per_epoch=3)
    assert ft.logs.tolist() == [2, 1, 6]
    np.testing.assert_allclose(ft.epochs, [1.0, 2 / 3, 7 / 3])
    np.testing.assert_allclose(ft.fraction, [2 / 6, 1 / 6, 1.0])
    assert ft.horizon == 6 and ft.logs_per_epoch == 3


def test_runs_of_different_length_compare_on_fraction():
    short, long = np.zeros((4, 1), bool), np.zeros((10, 1), bool)
    short[:], long[:] = True, True  # never forgotten in either run
    assert forgetting_time(short).fraction[0] == forgetting_time(long).fraction[0] == 1.0
    assert forgetting_time(short).logs[0] != forgetting_time(long).logs[0]


def test_accepts_0_1_ints_and_rejects_scores():
    assert learning_time(C.astype(int)).logs.tolist() == learning_time(C).logs.tolist()
    with pytest.raises(ValueError, match="threshold the scores"):
        learning_time(np.full((3, 2), 0.7))
    with pytest.raises(ValueError, match="2-d"):
        forgetting_time(np.ones(5, bool))
    with pytest.raises(ValueError, match="logs_per_epoch"):
        forgetting_time(C, logs_per_epoch=0)
