"""crdr-tiny: a small CRDR trained on the CPU through the paper's three stages (stage 1 single-rate
warm-up, stage 2 five ICA rate levels with per-level rate targets, stage 3 beta-conditioned decoder
against one GVAE per rate level with HRRGAN), with the paper's losses, lambdas and rate targets (in
stage 3 the LPIPS weight x10 for its random backbone, the GAN weight x30 with beta at its ends half the
time and the GVAEs at a 5x lower learning rate, and level 0's rate weight x2) and scaled-down
widths (conf/model/crdr_tiny.yaml), 128 px crops in a random RGB order (conf/data/crdr_tiny.yaml),
iterations (2500 / 3000 / 3000) and LR milestones (conf/experiment/crdr_tiny_stage{1,2,3}.yaml).
Seed 0 (conf/train.yaml); every stage resumes exactly from its last.ckpt when rerun, so the run can be
stopped and continued over several sessions.

First writes the training photographs (crdr.data.training_photos: nine photographs shipped offline with
scikit-image and matplotlib, never the Kodak images, which stay the evaluation set) with their
SOURCES.md to DATA_ROOT/crdr-tiny-train. LPIPS uses a random AlexNet backbone (no ImageNet weights
offline). Writes OUT/stage{1,2,3}/ and the final OUT/stage3/generator.safetensors, which
``save_generator(..., kernel_dtype=torch.float16)`` turns into the shipped crdr-tiny (docs/models/crdr-tiny.md).

Budget (AMD EPYC Zen 4 class, 2 cores, batch 8 of 128 px), measured in the shipped run: stage 1 0.43 s
per iteration and stage 2 0.43 s with two threads; stage 3 1.3 s with one thread beside a second stage-3
run (its first 2000 iterations) and 0.84 s with two threads (the last 1000): about 1 h 25 min for the
chain on an idle machine.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from recipe import parse_recipe_args

from crdr.data.training_photos import PHOTOS_FOLDER, write_training_photos


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_recipe_args("train_crdr_tiny", __doc__, argv)
    recipe = args.recipe
    if recipe.tiny:  # tiny mode writes the photographs beside its runs and trains on them
        data_root = recipe.out / "data"
    else:
        data_root = recipe.data_root or Path(os.environ.get("CRDR_DATA_ROOT", Path.cwd() / "data"))
    photos = data_root / PHOTOS_FOLDER
    print(f"training photographs: {photos}", flush=True)
    if not recipe.dry_run:
        write_training_photos(photos)
    recipe = dataclasses.replace(recipe, data_root=data_root, tiny_images=photos if recipe.tiny else None)
    previous = "null"
    for stage in (1, 2, 3):
        overrides = [f"experiment=crdr_tiny_stage{stage}", f"init_from={previous}"]
        previous = str(recipe.train(recipe.out / f"stage{stage}", overrides))
    print(f"final model: {recipe.out / 'stage3' / 'generator.safetensors'}")


if __name__ == "__main__":
    main()
