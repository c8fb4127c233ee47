"""The paper's three-stage training chain (5M iterations): stage 1 single-rate warm-up, stage 2 five ICA
rate levels, stage 3 beta-conditioned decoder against one discriminator per rate level (HRRGAN).

Each stage starts from the previous stage's last checkpoint; rerunning resumes where it stopped.
Writes OUT/stage{1,2,3}/ (checkpoints, CSV/W&B logs) and the final OUT/stage3/generator.safetensors,
the model of every figure and table (evaluate it with evaluate_grid.py and rd_realism_figure.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from recipe import parse_recipe_args

#: The model of each stage, with and without the channel-wise context model.
MODELS = {
    "charm": ("crdr_stage1", "crdr_stage2", "crdr"),
    "hyperprior": ("crdr_stage1_hyperprior", "crdr_stage2_hyperprior", "crdr_hyperprior"),
}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_recipe_args(
        "train_chain",
        __doc__,
        argv,
        context_model={
            "choices": sorted(MODELS),
            "default": "charm",
            "help": "hyperprior: the faster model without it",
        },
    )
    recipe = args.recipe
    previous = "null"
    for stage, model in enumerate(MODELS[args.context_model], start=1):
        overrides = [f"experiment=crdr_stage{stage}", f"model={model}", f"init_from={previous}"]
        previous = str(recipe.train(recipe.out / f"stage{stage}", overrides))
    print(f"final model: {recipe.out / 'stage3' / 'generator.safetensors'}")


if __name__ == "__main__":
    main()
