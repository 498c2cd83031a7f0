"""``python -m utils.report`` (``make report``): regenerate every generated README section from the caches.

=========================  ==============================  ===============================================
file                       sections                        from
=========================  ==============================  ===============================================
README.md                  headline-ssl-ae, headline-ssft  ``results/full`` (``make reproduce``)
README.md                  headline-scoreboard             ``results/board/scoreboard`` (``make scoreboard``)
README.md                  headline-pruning                ``results/prune/pruning`` (``make pruning``)
README.md                  headline-labeling               ``results/label/labeling`` (``make labeling``)
ssl-ae/README.md           results                         ``results/full``
ssft/README.md             ssft                            ``results/full``
scoreboard/README.md       scoreboard                      ``results/board/scoreboard``
pruning/README.md          pruning                         ``results/prune/pruning``
labeling/README.md         labeling                        ``results/label/labeling``
benchmarks/README.md       performance, scale,             ``results/bench_*.json`` (``make benchmark``)
                           label-filter, planted, outlier
labeling/README.md         label-probe, label-ccs          ``results/label-probe``, ``results/label-ccs`` (the
                                                           probes ``labeling/probe_features.py``, ``probe_ccs.py``)
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
STUDIES = ("seed", "scoreboard", "pruning", "labeling", "performance", "scale", "label-filter", "planted",
           "outlier", "label-probe", "label-ccs", "registry")


def regenerate(root=ROOT, full=None, board=None, prune=None, bench=None, only=STUDIES, log=print,
               label=None) -> list[str]:
    """Rewrite the sections of the studies in ``only`` whose results exist; returns ``file:section`` written."""
    root = Path(root)
    full = Path(full or root / outputs.RESULTS_FULL)
    board = Path(board or root / outputs.RESULTS_BOARD / outputs.SCOREBOARD_DIR)
    prune = Path(prune or root / outputs.RESULTS_PRUNE / outputs.PRUNING_DIR)
    label = Path(label or root / outputs.RESULTS_LABEL / outputs.LABELING_DIR)
    bench = Path(bench or root / "results")
    images = root / outputs.IMAGES_DIR
    # study, its results, the file that says they are there, the command that makes them, and its sections:
    # (file, section name, markdown from (results, readme folder))

    def study(folder, section, markdown, headline):   # a study README's section and its headline in README.md
        return [(f"{folder}/README.md", section, lambda r, d: markdown(r, images, d)),
                ("README.md", f"headline-{folder}", headline)]

    def benchmark(section, markdown, *names):   # a benchmarks/README.md section from results/bench_<name>.json
        return [("benchmarks/README.md", section,
                 lambda r, d: markdown(*(json.loads((r / f"bench_{k}.json").read_text()) for k in names)))]

    plan = [
        ("seed", full, outputs.STUDY_CONFIG, "make reproduce",
         study("ssl-ae", "results", sections.results_markdown, sections.ae_headline)),
        ("seed", full, outputs.SSFT_DETECTION, "make reproduce",
         study("ssft", "ssft", sections.ssft_markdown, sections.ssft_headline)),
        ("scoreboard", board, outputs.SCOREBOARD_BEST, "make scoreboard",
         study("scoreboard", "scoreboard", sections.scoreboard_markdown, sections.scoreboard_headline)),
        ("pruning", prune, outputs.PRUNING_GOALS, "make pruning",
         study("pruning", "pruning", sections.pruning_markdown, sections.pruning_headline)),
        ("labeling", label, outputs.LABELING_GOALS, "make labeling",
         study("labeling", "labeling", sections.labeling_markdown, sections.labeling_headline)),
        ("performance", bench, "bench_metrics.json", "make benchmark",
         benchmark("performance", sections.performance_markdown, "training", "metrics")),
        ("scale", bench, "bench_scale.json", "make benchmark", benchmark("scale", sections.scale_markdown, "scale")),
        ("label-filter", bench, "bench_label_filter.json", "make benchmark",
         benchmark("label-filter", sections.label_filter_markdown, "label_filter")),
        ("planted", bench, "bench_planted.json", "make benchmark", benchmark("planted", sections.planted_markdown,
                                                                             "planted")),
        ("outlier", bench, "bench_outlier.json", "make benchmark", benchmark("outlier", sections.outlier_markdown,
                                                                             "outlier")),
        ("label-probe", bench / "label-probe", "probe.csv", "python labeling/probe_features.py",
         [("labeling/README.md", "label-probe", lambda r, d: sections.label_probe_markdown(r, d))]),
        ("label-ccs", bench / "label-ccs", "probe.csv", "python labeling/probe_ccs.py",
         [("labeling/README.md", "label-ccs",
           lambda r, d: sections.label_probe_markdown(r, d, "labeling/probe_ccs.py"))]),
        ("registry", root, "", "", [("docs/scores.md", "registry", lambda r, d: sections.registry_markdown())]),
    ]
    done = []
    for study, results, marker, command, parts in plan:
        if study not in only:
            continue
        if marker and not (results / marker).is_file():
            log(f"{study}: no {results / marker}; run `{command}` first (its sections are kept as they are)")
            continue
        for file, name, markdown in parts:
            target = root / file
            sections.replace_section(target, name, markdown(results, target.parent))
            done.append(f"{file}:{name}")
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--full", help=f"the seed study's results (default {outputs.RESULTS_FULL})")
    parser.add_argument("--board", help="the scoreboard's results (default results/board/scoreboard)")
    parser.add_argument("--prune", help="the pruning study's results (default results/prune/pruning)")
    parser.add_argument("--label", help="the labeling study's results (default results/label/labeling)")
    parser.add_argument("--bench", help="the folder of the benchmarks' JSON (default results)")
    args = parser.parse_args(argv)
    for name in regenerate(full=args.full, board=args.board, prune=args.prune, bench=args.bench, only=args.only,
                            label=args.label):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
