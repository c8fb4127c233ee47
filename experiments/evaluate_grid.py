"""The q x beta evaluation grid of the official results: 17 rate points (q = 0, 0.25, ..., 4) x beta in
{0, 3.84} on Kodak (24 images), the CLIC 2020 test set (428) and DIV2K validation (100), with the
official scripts' 8-bit truncation and FID network (pytorch-fid's Inception), so that OUT/<set>/results.csv
compares line by line with the official rd_results_<set>.csv (overlaid in OUT/<set>/rd_curves.png).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recipe import checkpoint_to_evaluate, parse_recipe_args

from crdr.evaluation.names import PAPER_BETA, PAPER_Q

DATASETS = ("kodak", "CLIC", "DIV2K")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_recipe_args(
        "evaluate_grid",
        __doc__,
        argv,
        checkpoint={"type": Path, "help": "model to evaluate (tiny mode: the bundled golden_tiny checkpoint)"},
        datasets={"default": ",".join(DATASETS), "help": "comma-separated subset of kodak,CLIC,DIV2K"},
    )
    recipe = args.recipe
    checkpoint = checkpoint_to_evaluate(args)
    official = ["metrics.reconstruction_8bit=truncate", "metrics.fid_network=pytorch-fid"]
    results = recipe.evaluate(checkpoint, args.datasets.split(","), recipe.out, PAPER_Q, PAPER_BETA, official)
    for path in recipe.summarize(results, None, f"q x beta grid of {checkpoint}"):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
