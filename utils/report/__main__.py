"""``python -m utils.report`` (``make report``): regenerate every generated README section from the caches.

=========================  ==============================  ===============================================
file                       sections                        from
=========================  ==============================  ===============================================
README.md                  headline-ssl-ae, headline-ssft  ``results/full`` (``make reproduce``)
README.md                  headline-scoreboard             ``results/board/scoreboard`` (``make scoreboard``)
README.md                  headline-pruning                ``results/prune/pruning`` (``make pruning``)
ssl-ae/README.md           results                         ``results/full``
ssft/README.md             ssft                            ``results/full``
scoreboard/README.md       scoreboard                      ``results/board/scoreboard``
pruning/README.md          pruning                         ``results/prune/pruning``
benchmarks/README.md       performance                     ``results/bench_*.json`` (``make benchmark``)
docs/scores.md             registry                        ``utils.scores.registry``
=========================  ==============================  ===============================================

A study whose results are not on this machine is skipped with a line that says so; its committed sections stay
as they are. ``--only`` restricts the run to some studies (the study commands of the Makefile use it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.report import sections
from utils.studies import outputs

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ("seed", "scoreboard", "pruning", "performance", "registry")


def _have(path: Path, name: str) -> bool:
    return (path / name).is_file()


def regenerate(root=ROOT, full=None, board=None, prune=None, bench=None, only=STUDIES, log=print) -> list[str]:
    """Rewrite the sections of the studies in ``only`` whose results exist; returns ``file:section`` written."""
    root = Path(root)
    full = Path(full or root / outputs.RESULTS_FULL)
    board = Path(board or root / outputs.RESULTS_BOARD / outputs.SCOREBOARD_DIR)
    prune = Path(prune or root / outputs.RESULTS_PRUNE / outputs.PRUNING_DIR)
    bench = Path(bench or root / "results")
    images = root / outputs.IMAGES_DIR
    readme = root / "README.md"
    done = []

    def write(file: Path, name: str, body: str) -> None:
        sections.replace_section(file, name, body)
        done.append(f"{file.relative_to(root)}:{name}")

    if "seed" in only:
        if _have(full, outputs.STUDY_CONFIG):
            write(root / "ssl-ae" / "README.md", "results", sections.results_markdown(full, images, root / "ssl-ae"))
            write(readme, "headline-ssl-ae", sections.ae_headline(full, root))
        else:
            log(f"seed study: no {full / outputs.STUDY_CONFIG}; run `make reproduce` first (sections kept)")
        if _have(full, outputs.SSFT_DETECTION):
            write(root / "ssft" / "README.md", "ssft", sections.ssft_markdown(full, images, root / "ssft"))
            write(readme, "headline-ssft", sections.ssft_headline(full, root))
        else:
            log(f"SSFT: no {full / outputs.SSFT_DETECTION}; run `make reproduce` first (sections kept)")
    if "scoreboard" in only:
        if _have(board, outputs.SCOREBOARD_BEST):
            write(root / "scoreboard" / "README.md", "scoreboard",
                  sections.scoreboard_markdown(board, images, root / "scoreboard"))
            write(readme, "headline-scoreboard", sections.scoreboard_headline(board, root))
        else:
            log(f"scoreboard: no {board / outputs.SCOREBOARD_BEST}; run `make scoreboard` first (sections kept)")
    if "pruning" in only:
        if _have(prune, outputs.PRUNING_WITHIN):
            write(root / "pruning" / "README.md", "pruning", sections.pruning_markdown(prune, images, root / "pruning"))
            write(readme, "headline-pruning", sections.pruning_headline(prune, root))
        else:
            log(f"pruning: no {prune / outputs.PRUNING_WITHIN}; run `make pruning` first (sections kept)")
    if "performance" in only:
        files = [bench / "bench_training.json", bench / "bench_metrics.json"]
        if all(f.is_file() for f in files):
            training, metrics = (json.loads(f.read_text()) for f in files)
            write(root / "benchmarks" / "README.md", "performance", sections.performance_markdown(training, metrics))
        else:
            log(f"performance: no {files[0]} / {files[1].name}; run `make benchmark` first (section kept)")
    if "registry" in only:
        write(root / "docs" / "scores.md", "registry", sections.registry_markdown())
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--full", help=f"the seed study's results (default {outputs.RESULTS_FULL})")
    parser.add_argument("--board", help="the scoreboard's results (default results/board/scoreboard)")
    parser.add_argument("--prune", help="the pruning study's results (default results/prune/pruning)")
    parser.add_argument("--bench", help="the folder of the benchmarks' JSON (default results)")
    args = parser.parse_args(argv)
    for name in regenerate(full=args.full, board=args.board, prune=args.prune, bench=args.bench, only=args.only):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
