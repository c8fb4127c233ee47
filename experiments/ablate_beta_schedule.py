"""Beta-schedule ablation (how beta is drawn per iteration in stage 3): the paper's 101 discrete values
uniform on [0, 5.12] against continuous uniform, log-uniform, end-weighted, a curriculum, and a single
fixed beta = 2.56 (no multi-realism: the decoder still takes beta but never sees others). Stage 3 is
shortened to 300k iterations (experiment=stage3_ablation), each run starts from the same stage-2
model and is evaluated on CLIC 2020 test at the five rate levels x beta in {0, 3.84}.
"""

from __future__ import annotations

from collections.abc import Sequence

from recipe import run_ablation

OPTIONS = ["discrete_uniform", "continuous_uniform", "log_uniform", "end_weighted", "curriculum", "fixed"]


def main(argv: Sequence[str] | None = None) -> None:
    run_ablation("ablate_beta_schedule", __doc__, "beta_schedule", OPTIONS, argv)


if __name__ == "__main__":
    main()
