"""Adversarial-loss ablation: stage 3 (shortened to 300k iterations, experiment=stage3_ablation) from the
same stage-2 model with the paper's HRRGAN (the reference of a level-q reconstruction is the one at
the next higher rate) against RaGAN, RGAN (reference = the real image) and the standard
non-saturating GAN. Each is evaluated on CLIC 2020 test at the five rate levels x beta in {0, 3.84};
OUT/summary.{csv,md} and OUT/rd_curves.png compare them.
"""

from __future__ import annotations

from collections.abc import Sequence

from recipe import run_ablation

OPTIONS = ["hrrgan", "ragan", "rgan", "vanilla"]


def main(argv: Sequence[str] | None = None) -> None:
    run_ablation("ablate_gan_loss", __doc__, "gan_loss", OPTIONS, argv)


if __name__ == "__main__":
    main()
