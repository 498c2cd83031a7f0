"""Second-split forgetting time (Maini et al. 2022): times, the two-split protocol, scores and quadrants."""
from utils.ssft.protocol import SSFTConfig, TwoSplitRun, run_ssft, run_two_split, split_halves  # noqa: F401
from utils.ssft.quadrants import QUADRANTS, fit_quadrants, quadrant_table  # noqa: F401
from utils.ssft.recipes import RECIPES, Recipe, get_recipe  # noqa: F401
from utils.ssft.scores import ssft_scores  # noqa: F401
from utils.ssft.tasks import make_task  # noqa: F401
from utils.ssft.times import Times, forgetting_events, forgetting_time, learning_time  # noqa: F401
