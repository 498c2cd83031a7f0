"""Second-split forgetting time (Maini et al. 2022): times, scores, quadrants, detection tables, the cached study.

The two-split protocol itself is :mod:`utils.protocols` (every stage a call of the one loop)."""
from utils.protocols import SSFTConfig, TwoSplitRun, run_ssft, run_two_split, split_halves  # noqa: F401
from utils.recipes import RECIPES, Recipe, get_recipe  # noqa: F401
from utils.ssft.quadrants import QUADRANTS, fit_quadrants, quadrant_table  # noqa: F401
from utils.ssft.scores import ssft_scores  # noqa: F401
from utils.ssft.times import Times, forgetting_events, forgetting_time, learning_time  # noqa: F401
