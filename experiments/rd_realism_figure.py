"""The rate-distortion-realism figure (Fig. 5 of the paper): PSNR, FID and LPIPS against bpp on the CLIC
2020 test set for beta = 0 (low distortion) and beta = 3.84 (high realism) over the 17 rate points,
with the official CRDR curves overlaid (dashed). Writes OUT/rd_realism.{png,svg}; the evaluation in
OUT/<set>/ is resumable and can be shared with evaluate_grid.py (--out runs/experiments/evaluate_grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recipe import checkpoint_to_evaluate, parse_recipe_args, results_note

from crdr.evaluation.names import PAPER_BETA, PAPER_Q
from crdr.evaluation.plots import load_results, official_results, plot_rd_curves


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_recipe_args(
        "rd_realism_figure",
        __doc__,
        argv,
        checkpoint={"type": Path, "help": "model to plot (tiny mode: the bundled golden_tiny checkpoint)"},
        dataset={"default": "CLIC", "choices": ["CLIC", "kodak", "DIV2K"], "help": "evaluation set (CLIC)"},
    )
    recipe = args.recipe
    checkpoint = checkpoint_to_evaluate(args)
    (results,) = recipe.evaluate(checkpoint, [args.dataset], recipe.out, PAPER_Q, PAPER_BETA).values()
    if recipe.dry_run:
        return
    ours = load_results(results)
    tables = {"ours": ours, f"official {args.dataset}": official_results(args.dataset)}
    note = results_note(ours)
    title = f"{args.dataset}: rate-distortion-realism, beta in {{0, 3.84}}" + (f"\n({note})" if note else "")
    for path in plot_rd_curves(tables, ["PSNR", "FID", "LPIPS"], recipe.out / "rd_realism", title):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
