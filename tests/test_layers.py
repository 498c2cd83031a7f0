"""The package's layers: no module imports from a layer above it, numpy-only modules never pull in torch, and
committed notebooks carry no path of the machine that ran them."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["metrics", "data", "engine", "scores", "studies", "report"]   # bottom to top


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "utils" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}   # `from utils.studies import outputs`
    return {n for n in names if n.startswith("utils.")}


ENTRY = ["score.py"]   # command-line entry points above every layer (they only call into the layers)


def test_every_module_belongs_to_a_layer():
    loose = sorted(p.name for p in (ROOT / "utils").glob("*.py") if p.name != "__init__.py")
    assert loose == ENTRY, f"modules outside the layers: {sorted(set(loose) - set(ENTRY))}"
    assert sorted(p.name for p in (ROOT / "utils").iterdir() if p.is_dir() and p.name != "__pycache__") == \
        sorted(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_imports_from_a_layer_above(layer):
    own = LAYERS.index(layer)
    bad = []
    for path in sorted((ROOT / "utils" / layer).rglob("*.py")):
        for name in _imports(path):
            other = _layer(name)
            if other is not None and other > own:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


@pytest.mark.parametrize("module", ["utils.scores.registry", "utils.scores.dynamics", "utils.scores.evaluate",
                                    "utils.scores.ssft", "utils.scores.label_quality", "utils.scores.quadrants",
                                    "utils.metrics.times", "utils.engine.cache", "utils.studies.outputs"])
def test_numpy_only_modules_do_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", f"{module} imports torch"


ABSOLUTE = re.compile(r'(^|[^\w:.])\\?"/[\w.-]+/[\w.-]+')   # a JSON string that starts with an absolute path


def test_committed_notebooks_hold_no_absolute_path():
    notebooks = sorted(ROOT.glob("*/*.ipynb"))
    assert len(notebooks) >= 8
    bad = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in notebooks for m in ABSOLUTE.finditer(p.read_text())]
    assert bad == [], bad[:5]


def test_relativize_strips_this_machines_paths(tmp_path):
    import nbformat

    from utils.report.run_notebooks import ROOT as REPO
    from utils.report.run_notebooks import relativize
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"input_path": str(REPO / "ssft" / "a.ipynb"), "output_path": str(REPO / "x.ipynb"),
                                "parameters": {"DATA_ROOT": str(REPO.parent / "shared" / "data"), "N": 3}}
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr",
                                           text=f"{sys.prefix}/lib/site.py:3: UserWarning: x\n{REPO}/utils/a.py\n")]
    nb.cells = [cell]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    relativize(path)
    text = path.read_text()
    assert not ABSOLUTE.search(text) and str(REPO) not in text and sys.prefix not in text
    meta = json.loads(text)["metadata"]["papermill"]
    assert meta["input_path"] == "ssft/a.ipynb" and meta["parameters"]["N"] == 3


@pytest.mark.parametrize("concept, pattern, home", [
    ("the sample container", r"^class Samples\b", "utils/data/samples.py"),
    ("the settings check", r"^def check_settings\(", "utils/engine/cache.py"),
    ("a lock on a results folder", r"FileLock\(", "utils/engine/cache.py"),
    ("the evaluation of a score against flags", r"roc_auc_score\(", "utils/scores/evaluate.py"),
    ("the image battery", r"^def (image_battery|intensity_stats|shape_stats)\(", "utils/scores/battery.py"),
    ("which end of a score is suspicious", r"^(DIRECTION|SUSPICION)\w* = |^def oriented\(", "utils/scores/registry.py"),
    ("the worker pool", r"ProcessPoolExecutor\(", "utils/engine/workers.py"),
    ("the training loop's optimizer step", r"optimizer\.step\(\)", "utils/engine/loop.py"),
])
def test_each_concept_lives_in_one_module(concept, pattern, home):
    where = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "utils").rglob("*.py")
                   if re.search(pattern, p.read_text(), re.M))
    assert where == [home], f"{concept}: {where}"


# the studies' common protocol: the same name means the same step in each study (and `main` is each CLI's entry)
SHARED_NAMES = {"run", "goals", "load_config", "load", "accuracy_summary", "main"}   # load: a study's published tables


def test_a_public_function_name_has_one_meaning():
    where = {}
    for path in sorted((ROOT / "utils").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1 and name not in SHARED_NAMES}
    assert twice == {}, f"public functions defined in more than one module: {twice}"
