"""Discriminator-design ablation: stage 3 (shortened to 300k iterations, experiment=stage3_ablation) from
the same stage-2 model with each discriminator design: one GVAE per rate level (module_list, the
paper's), one GVAE with the rate level as one-hot input planes (multirate_gvae), one shared GVAE (gvae),
HiFiC's latent-conditioned discriminator (hific). Each is evaluated on CLIC 2020 test at the five
rate levels x beta in {0, 3.84}; OUT/summary.{csv,md} and OUT/rd_curves.png compare them.
"""

from __future__ import annotations

from collections.abc import Sequence

from recipe import run_ablation

OPTIONS = ["module_list", "multirate_gvae", "gvae", "hific"]


def main(argv: Sequence[str] | None = None) -> None:
    run_ablation("ablate_discriminator", __doc__, "discriminator", OPTIONS, argv)


if __name__ == "__main__":
    main()
