import numpy as np
import pytest

from benchmarks.bench_scale import fit_exponent, knn_exponent
from utils.report.sections import scale_markdown


def test_fit_exponent_recovers_a_power_law():
    n = np.array([5e3, 1e4, 2e4, 4e4, 7e4])
    assert fit_exponent(n, 3e-4 * n ** 1.3) == pytest.approx(1.3)
    assert fit_exponent(n, 2e-8 * n ** 2 * np.exp([0.01, -0.01, 0.0, 0.01, -0.01])) == pytest.approx(2, abs=0.02)
    with pytest.raises(ValueError, match="two sizes"):
        fit_exponent([10], [1.0])


def _scale(last_n, all_wall):
    sizes = [5_000, 10_000, last_n]
    rows = [dict(n=n, family=f, seconds=c * n, wall_s=c * n, peak_rss_mb=500 + n / 100)
            for n in sizes for f, c in (("pixels", 1e-4), ("supervised", 4e-3))]
    rows.append(dict(n=last_n, family="all", seconds=all_wall, wall_s=all_wall, peak_rss_mb=4096))
    knn = [dict(n=n, k=10, seconds={"sklearn": 1e-8 * n ** 2, "faiss": 5e-9 * n ** 2}, same_neighbours=1.0,
                max_distance_diff=0.0) for n in sizes]
    return dict(rows=rows, exponents={"pixels": 1.0, "supervised": 1.0}, knn=knn, knn_exponent=knn_exponent(knn),
                cores=2)


def test_scale_section_states_the_goal_only_where_it_was_measured():
    md = scale_markdown(_scale(70_000, 19 * 60))
    assert "19.0 min wall" in md and ": met)" in md and "`supervised` dominates" in md
    assert "FAISS) grows as N^2.00" in md
    assert ": not met)" in scale_markdown(_scale(70_000, 21 * 60))
    assert "not measured: this run stopped at 20,000" in scale_markdown(_scale(20_000, 60))


def test_scale_section_states_the_default_tier_goal_apart():
    scale = _scale(70_000, 19 * 60)
    scale["rows"].append(dict(n=70_000, family="default", seconds=11 * 60, wall_s=11 * 60, peak_rss_mb=3000))
    md = scale_markdown(scale)
    assert "The default tier on 70,000 images, one process: 11.0 min wall" in md
    assert "<= 10 min on 2 cores: not met)" in md and "<= 20 min on 2 cores: met)" in md
    assert "| default" not in md   # not a family column
