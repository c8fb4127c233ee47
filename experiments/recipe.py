"""The commands behind the recipes of ``experiments/`` (imported as ``recipe``, beside them): paper scale,
or a tiny CPU mode that runs in seconds.

A recipe is a short script that calls :class:`Recipe` methods; each training or evaluation step is
printed as the ``crdr-train`` / ``crdr evaluate`` command line it runs (``dry_run`` only prints them,
to copy into a cluster script), so a recipe documents itself. Every step resumes: a rerun skips
finished evaluation points, and training resumes from ``last.ckpt`` (``ckpt_path=auto``).

Tiny mode (``tiny_images``: a folder of a few images, by default the package's demo images) trains with
``debug=tiny`` (conf/debug/tiny.yaml: the model at the widths of the official golden_tiny model, 2
iterations on 64 px crops), evaluates
(by default the shipped crdr-tiny) on 256 px crops with random metric backbones (labelled as such in
every result) and two rate points.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crdr.evaluation.names import PAPER_BETA, PAPER_Q
from crdr.evaluation.plots import load_results, official_results, plot_rd_curves
from crdr.io.files import IMAGE_SUFFIXES, expand_paths, write_text_atomic
from crdr.io.images import read_image, write_image
from crdr.package_data import DEMO_IMAGE_DIR


def override_value(value: object) -> str:
    """A Python value as a Hydra override value."""
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list | tuple) else str(value)


def results_note(table: pd.DataFrame) -> str:
    """The distinct ``note`` entries of result rows (e.g. that random backbones were used), joined."""
    notes = set(table["note"].dropna()) - {""} if "note" in table.columns else set()
    return "; ".join(sorted(map(str, notes)))


def _tool(name: str) -> str:
    """The console script installed beside this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


@dataclass(frozen=True)
class Recipe:
    """Where a recipe writes and how big it runs.

    Args:
        out: folder for every run, evaluation and figure of the recipe.
        tiny_images: a folder of a few images: tiny CPU mode (see the module docstring); None: paper scale.
        gpus: GPUs per training run (DDP at the paper's global batch of 8) and for evaluation.
        launcher: Hydra launcher for sweeps (``slurm``: one job per run; ``local_parallel``), or None.
        data_root: where ``crdr data fetch`` put the datasets (None: ``$CRDR_DATA_ROOT``, else ./data).
        dry_run: print the commands without running them.
    """

    out: Path
    tiny_images: Path | None = None
    gpus: int = 1
    launcher: str | None = None
    data_root: Path | None = None
    dry_run: bool = False

    @property
    def tiny(self) -> bool:
        return self.tiny_images is not None

    def run(self, tool: str, args: Sequence[str]) -> None:
        """Prints ``tool args`` as a shell line and runs it (raises CalledProcessError on failure)."""
        print("$ " + shlex.join([tool, *args]), flush=True)
        if self.dry_run:
            return
        env = dict(os.environ)
        if self.data_root is not None:
            env["CRDR_DATA_ROOT"] = str(self.data_root)
        subprocess.run([_tool(tool), *args], check=True, env=env)

    def _scale_overrides(self, single_run: bool) -> list[str]:
        if self.tiny:  # conf/debug/tiny.yaml on the tiny-mode images
            return ["debug=tiny", f"data.train_dirs=[{self.tiny_images}]", f"data.val_dirs=[{self.tiny_images}]"]
        if self.gpus > 1 and single_run:
            if 8 % self.gpus:
                raise ValueError(f"the paper's global batch of 8 does not split over {self.gpus} GPUs")
            return [
                f"trainer.devices={self.gpus}",
                "trainer.strategy=ddp_find_unused_parameters_true",
                f"data.batch_size={8 // self.gpus}",
            ]
        return []

    def train(self, run_dir: Path, overrides: Sequence[str]) -> Path:
        """One ``crdr-train`` run into ``run_dir`` (one job of the launcher, if any); returns its last checkpoint."""
        overrides = [*overrides, *self._scale_overrides(single_run=True)]
        if launcher := self._launcher():  # a one-job sweep: the launcher waits for it to finish
            gpus = [f"hydra.launcher.gpus_per_node={self.gpus}", f"hydra.launcher.tasks_per_node={self.gpus}"]
            launcher += gpus if self.launcher == "slurm" else []
            self.run("crdr-train", ["-m", *launcher, *overrides, f"hydra.sweep.dir={run_dir}", "hydra.sweep.subdir=."])
        else:
            self.run("crdr-train", [*overrides, f"hydra.run.dir={run_dir}"])
        return run_dir / "checkpoints" / "last.ckpt"

    def sweep(self, sweep_dir: Path, overrides: Sequence[str], group: str, options: Sequence[str]) -> dict[str, Path]:
        """A ``crdr-train -m`` sweep of config ``group`` over ``options``; returns each option's exported generator."""
        scale = self._scale_overrides(single_run=False)
        sweep = [f"{group}={','.join(options)}", f"hydra.sweep.dir={sweep_dir}"]
        subdir = f"hydra.sweep.subdir=${{hydra:runtime.choices.{group}}}"
        self.run("crdr-train", ["-m", *self._launcher(), *overrides, *scale, *sweep, subdir])
        return {option: sweep_dir / option / "generator.safetensors" for option in options}

    def _evaluation_overrides(self, dataset: str, q: Sequence[float], beta: Sequence[float]) -> list[str]:
        if self.tiny:
            crops = self._tiny_dataset()
            return [
                f"dataset={crops}",
                f"dataset_name={dataset}",
                f"grid.q={override_value([min(q), max(q)])}",
                f"grid.beta={override_value(list(beta))}",
                "metrics.random_backbones=true",
                "progress=false",
            ]
        grid = [f"dataset={dataset}", f"grid.q={override_value(list(q))}", f"grid.beta={override_value(list(beta))}"]
        return [*grid, "device=cuda"] if self.gpus > 0 else grid

    def _tiny_dataset(self) -> Path:
        """Center crops (256 px, or the shorter side) of the tiny-mode images (one FID patch each), made once."""
        folder = self.out / "tiny_eval_images"
        if not self.dry_run and not folder.is_dir():
            for path in expand_paths([self.tiny_images], IMAGE_SUFFIXES):
                x = read_image(path)
                size = min(256, *x.shape[-2:])
                top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
                write_image(x[..., top : top + size, left : left + size], folder / f"{path.stem}.png")
        return folder

    def _launcher(self) -> list[str]:
        return [f"hydra/launcher={self.launcher}"] if self.launcher and not self.tiny else []

    def _evaluate_jobs(self, key: str, args: Sequence[str], eval_dir: Path, names: Sequence[str]) -> dict[str, Path]:
        """``crdr evaluate -m ARGS``: one job per value of the config key ``key``, each into ``eval_dir/<value>``;
        returns each one's results.csv."""
        jobs = [f"output_dir={eval_dir}/${{{key}}}", f"hydra.sweep.dir={eval_dir}", f"hydra.sweep.subdir=${{{key}}}"]
        self.run("crdr", ["evaluate", "-m", *self._launcher(), *args, *jobs])
        return {name: eval_dir / name / "results.csv" for name in names}

    def evaluate(
        self,
        checkpoint: Path,
        datasets: Sequence[str],
        eval_dir: Path,
        q: Sequence[float] = PAPER_Q,
        beta: Sequence[float] = PAPER_BETA,
        extra: Sequence[str] = (),
    ) -> dict[str, Path]:
        """One checkpoint on ``datasets`` (kodak, CLIC, DIV2K; one job each, in ``eval_dir/<dataset>``)."""
        key = "dataset_name" if self.tiny else "dataset"  # tiny mode evaluates crops under each name
        overrides = self._evaluation_overrides(",".join(datasets), q, beta)
        return self._evaluate_jobs(key, [f"checkpoint={checkpoint}", *overrides, *extra], eval_dir, datasets)

    def evaluate_sweep(
        self, checkpoints: Mapping[str, Path], dataset: str, eval_dir: Path, q: Sequence[float], beta: Sequence[float]
    ) -> dict[str, Path]:
        """The generators of one training sweep on ``dataset`` (one job each, in ``eval_dir/<name>``)."""
        names = list(checkpoints)
        folder = {Path(p).parent.parent for p in checkpoints.values()}
        if len(folder) != 1 or any(Path(p).parent.name != n for n, p in checkpoints.items()):
            raise ValueError("evaluate_sweep expects the generators of one sweep: <dir>/<name>/generator.safetensors")
        (sweep_dir,) = folder
        args = [
            f"+variant={','.join(names)}",
            f"checkpoint={sweep_dir}/${{variant}}/generator.safetensors",
            *self._evaluation_overrides(dataset, q, beta),
        ]
        return self._evaluate_jobs("variant", args, eval_dir, names)

    def summarize(self, results: Mapping[str, Path], official: str | None, title: str) -> list[Path]:
        """``summary.csv`` (every variant's rows), ``summary.md`` (means over the rate points) and RD curves."""
        if self.dry_run:
            return []
        tables = {name: load_results(path) for name, path in results.items()}
        combined = pd.concat([t.assign(variant=name) for name, t in tables.items()], ignore_index=True)
        combined = combined[["variant", *[c for c in combined.columns if c != "variant"]]]
        write_text_atomic(self.out / "summary.csv", combined.to_csv(index=False))
        metrics = [m for m in ("bpp", "PSNR", "MS-SSIM", "FID", "LPIPS", "DISTS") if m in combined.columns]
        means = combined.groupby(["variant", "beta"], sort=False)[metrics].mean().reset_index()
        note = results_note(combined)
        lines = [
            f"# {title}",
            "",
            "Means over the evaluated rate points" + (f" ({note})" if note else "") + ".",
            "",
            "| variant | beta | " + " | ".join(metrics) + " |",
            "|---|---|" + "---|" * len(metrics),
        ]
        for row in means.itertuples(index=False):
            lines.append(f"| {row[0]} | {row[1]:g} | " + " | ".join(f"{v:.4g}" for v in row[2:]) + " |")
        write_text_atomic(self.out / "summary.md", "\n".join(lines) + "\n")
        if official:
            tables[f"official {official}"] = official_results(official)
        plots = plot_rd_curves(tables, output=self.out / "rd_curves", title=title + (f"\n({note})" if note else ""))
        return [self.out / "summary.csv", self.out / "summary.md", *plots]


#: What tiny mode evaluates by default: the shipped crdr-tiny.
TINY_MODE_CHECKPOINT = "crdr-tiny"


def checkpoint_to_evaluate(args: argparse.Namespace) -> Path | str:
    """``--checkpoint``, or in tiny mode the shipped crdr-tiny."""
    if args.checkpoint is not None:
        return args.checkpoint
    if args.recipe.tiny:
        return TINY_MODE_CHECKPOINT
    raise SystemExit("--checkpoint is required (train_chain.py writes OUT/stage3/generator.safetensors)")


def parse_recipe_args(name: str, description: str, argv: Sequence[str] | None = None, **extra) -> argparse.Namespace:
    """The common options of every recipe (and ``extra``: name -> add_argument kwargs); ``args.recipe`` is set."""
    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description)
    parser.add_argument("--out", type=Path, help=f"output folder (default runs/experiments/{name}[-tiny])")
    parser.add_argument(
        "--tiny",
        nargs="?",
        type=Path,
        const=DEMO_IMAGE_DIR,
        metavar="IMAGES",
        help="tiny CPU mode on a few images (default: the demo images shipped in the package), seconds per step",
    )
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per training run (DDP, global batch 8) and eval")
    parser.add_argument("--launcher", choices=["slurm", "local_parallel"], help="Hydra launcher for the sweeps")
    parser.add_argument("--data-root", type=Path, help="where `crdr data fetch` put the sets ($CRDR_DATA_ROOT)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    for option, kwargs in extra.items():
        parser.add_argument(f"--{option.replace('_', '-')}", **kwargs)
    args = parser.parse_args(argv)
    if args.tiny is not None and not args.tiny.is_dir():
        parser.error(f"--tiny {args.tiny}: no such folder of images")
    out = args.out or Path("runs/experiments") / (f"{name}-tiny" if args.tiny else name)
    args.recipe = Recipe(out, args.tiny, args.gpus, args.launcher, args.data_root, args.dry_run)
    return args


#: The five trained rate levels: the ablations' evaluation points.
ABLATION_Q = [0.0, 1.0, 2.0, 3.0, 4.0]


def run_ablation(name: str, description: str, group: str, options: Sequence[str], argv: Sequence[str] | None) -> None:
    """A stage-3 ablation: sweep ``group`` over ``options`` from one stage-2 model, evaluate each, compare."""
    args = parse_recipe_args(
        name,
        description,
        argv,
        init_from={
            "help": "stage-2 checkpoint every run starts from (train_chain.py: OUT/stage2/checkpoints/last.ckpt)"
        },
        dataset={"default": "CLIC", "choices": ["CLIC", "kodak", "DIV2K"], "help": "evaluation set (CLIC)"},
    )
    recipe = args.recipe
    if args.init_from is None and not recipe.tiny:
        raise SystemExit(f"{name}.py: --init-from STAGE2.ckpt is required (tiny mode starts from scratch)")
    train = ["experiment=stage3_ablation", f"init_from={args.init_from or 'null'}"]
    generators = recipe.sweep(recipe.out / "train", train, group, options)
    results = recipe.evaluate_sweep(generators, args.dataset, recipe.out / "eval", ABLATION_Q, PAPER_BETA)
    for path in recipe.summarize(results, args.dataset, f"{group} ablation on {args.dataset}"):
        print(f"wrote {path}")
