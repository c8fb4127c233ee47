"""The ``crdr`` argument parser. Free of torch (and of numpy, pandas, matplotlib): ``crdr --help`` and
every subcommand's ``--help`` start at once. Each subcommand names its implementation as
``"module:function"`` in ``args.run``; :func:`crdr.cli.main.main` imports it only after parsing."""

from __future__ import annotations

import argparse

from crdr.cli.arguments import float_list, names_list
from crdr.evaluation.names import DEFAULT_METRICS, OFFICIAL_DATASETS

#: Larger images are refused before decoding. Measured with the full-width model on CPU: about 1.4 GB
#: for torch and the model plus 0.7 GB per megapixel (1536x1024: 2.5 GB peak; decompressing it: 3.2 GB).
DEFAULT_MAX_PIXELS = 12_000_000
#: Every ``--checkpoint``: a name of ``crdr models`` or a file.
CHECKPOINT_HELP = "a shipped model (crdr models: e.g. crdr-tiny), official .pth.tar, .safetensors or Lightning .ckpt"
#: ``crdr decompress --precision`` choices (the codec's synthesis dtypes).
SYNTHESIS_PRECISIONS = ("bfloat16", "float16", "float32")
#: ``--entropy-parameters`` help, shared by compress and decompress.
ENTROPY_PARAMETERS_HELP = (
    "portable (default): hyper-synthesis and context model on the CPU in float32, files decodable on any "
    "x86-64 CPU; device: on --device with deterministic kernels (much faster on a GPU), files flagged and "
    "decodable only with --entropy-parameters device on the same kind of device (same GPU and software)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crdr", description="Controllable generative image compression (CRDR).")
    commands = parser.add_subparsers(dest="command", required=True)
    add_codec_parsers(commands)
    add_reconstruct_parser(commands)
    add_plot_parser(commands)
    add_shard_parser(commands)
    add_score_parser(commands)
    m = commands.add_parser("models", help="list the models shipped in the package (names for --checkpoint)")
    m.set_defaults(run="crdr.cli.models:run")
    commands.add_parser("evaluate", help="q x beta grid of metrics (Hydra overrides: crdr evaluate --help)")
    add_merge_parser(commands)
    commands.add_parser("data", help="fetch and verify the paper's datasets (crdr data --help)")
    return parser


def add_codec_parsers(commands: argparse._SubParsersAction) -> None:
    c = commands.add_parser("compress", help="compress images to .crdr files")
    c.add_argument("inputs", nargs="+", help="image files or folders (PNG/JPEG, searched recursively)")
    c.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, help="quality level in [0, 4] (continuous)")
    rate.add_argument("--target-bpp", type=float, help="search q per image to reach this bit rate")
    c.add_argument("--device", default="cpu", help="cpu or cuda (entropy parameters: see --entropy-parameters)")
    c.add_argument(
        "--entropy-parameters", choices=["portable", "device"], default="portable", help=ENTROPY_PARAMETERS_HELP
    )
    c.add_argument(
        "--precision",
        choices=["bfloat16", "float32"],
        default="float32",
        help="float32: files byte-identical to the official code's; bfloat16: analysis and context model "
        "under bfloat16 autocast, about 3x faster on CPUs with AMX, rate within 1%%, decodable by crdr on "
        "CPUs with the same bfloat16 arithmetic (checked by a symbols checksum)",
    )
    c.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images before decoding them (full-width model: about 1.4 GB + 0.7 GB per megapixel)",
    )
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.set_defaults(run="crdr.cli.codec_commands:run_compress")

    d = commands.add_parser("decompress", help="decode .crdr files to PNG at one or more realism levels")
    d.add_argument("inputs", nargs="+", help=".crdr files or folders")
    d.add_argument(
        "--checkpoint", required=True, help="the checkpoint the files were made with (a name of crdr models or a file)"
    )
    d.add_argument("--beta", type=float_list, default=None, help="realism weight(s) in [0, 5.12], e.g. 0,2.56,5.12")
    d.add_argument("--device", default="cpu")
    d.add_argument(
        "--entropy-parameters", choices=["portable", "device"], default="portable", help=ENTROPY_PARAMETERS_HELP
    )
    d.add_argument(
        "--precision",
        choices=SYNTHESIS_PRECISIONS,
        default="float32",
        help="synthesis precision; bfloat16 is about 3x faster on CPUs with AMX and on GPUs, "
        "its pixels differ from float32 by a few 1e-3 (the entropy decoding is unchanged; a file made "
        "with compress --precision bfloat16 runs its context model in bfloat16 whatever this says)",
    )
    d.add_argument("-o", "--output", required=True, help="output folder")
    d.set_defaults(run="crdr.cli.codec_commands:run_decompress")


def add_reconstruct_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "reconstruct",
        help="reconstruct images at several (q, beta) and report the estimated bpp and PSNR",
        description="Runs the model (no bitstream) on images; writes NAME_q{q}_beta{beta}.png and results.csv.",
    )
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG/JPEG)")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--config", help="model config name or YAML (default: from the checkpoint)")
    p.add_argument("-q", "--quality", type=float_list, default=[2.0], help="quality levels, e.g. 0,2,4")
    p.add_argument("--beta", type=float_list, default=[2.56], help="realism weights, e.g. 0,5.12")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run="crdr.cli.reconstruct:run")


def add_plot_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "plot",
        help="plot RD curves (bpp vs. PSNR/FID/LPIPS/DISTS, one line per beta) from result CSVs",
        description="Reads CSVs with columns quality,beta,bpp and metric columns; writes OUTPUT.png and OUTPUT.svg.",
    )
    p.add_argument("inputs", nargs="+", metavar="CSV", help="result tables; each is labelled by its file name")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_PREFIX", help="writes OUTPUT_PREFIX.png/.svg")
    p.add_argument(
        "--with-official",
        metavar="DATASET",
        help=f"overlay the official CRDR results (dashed): {', '.join(OFFICIAL_DATASETS.values())}",
    )
    p.add_argument(
        "--metrics",
        type=names_list,
        default=list(DEFAULT_METRICS),
        help=f"comma-separated metrics, one subplot each where present (default {','.join(DEFAULT_METRICS)})",
    )
    p.add_argument("--title", help="figure title")
    p.set_defaults(run="crdr.cli.plot:run_plot")


def add_merge_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "merge",
        help="merge the shards of a sharded crdr evaluate (shard.count=N) into one results folder",
        description="Writes results.csv, per_image.csv, run.json, rd_curves and grid.png/.svg (and the W&B run, "
        "when the shards had wandb.enabled) of the whole set, as one crdr evaluate run would; FID/KID are "
        "computed from the patch features the shards kept. Refuses shards of different evaluations, missing, "
        "duplicate or unfinished shards.",
    )
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="the folders OUTPUT_DIR/shard-INDEX-of-COUNT")
    p.add_argument("-o", "--output", required=True, help="output folder (e.g. the shards' OUTPUT_DIR)")
    p.set_defaults(run="crdr.cli.merge:run")


def add_shard_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("shard", help="pack image files or folders into tar shards for data=tar_shards")
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG/JPEG, searched recursively)")
    p.add_argument("-o", "--output", required=True, help="folder for shard-000000.tar, shard-000001.tar, ...")
    p.add_argument("--images-per-shard", type=int, default=1000)
    p.set_defaults(run="crdr.cli.shard:run")


#: ``crdr score --metrics`` names (FID also gives KID) and ``--resize`` rules (crdr.evaluation.score).
SCORE_METRICS = ("PSNR", "MS-SSIM", "LPIPS", "DISTS", "FID")
RESIZE_RULES = ("none", "bilinear", "bicubic", "lanczos")
#: ``crdr score --fid-network`` choices (crdr.metrics.inception).
FID_NETWORKS = ("torch-fidelity", "pytorch-fid")


def add_score_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "score",
        help="score any codec's reconstructions with the crdr evaluate metrics, CSVs and RD plots",
        description="One rate point per --reconstructions folder (matched to the originals by file stem), its "
        "rate from the coded files in the matching --rates folder (their sizes: 'coded') or a CSV with columns "
        "image and bytes or bpp ('reported'). Writes results.csv, per_image.csv, run.json and rd_curves.png/.svg.",
    )
    p.add_argument("originals", help="folder of the original images (PNG/JPEG)")
    p.add_argument("--reconstructions", nargs="+", required=True, metavar="DIR", help="one folder per rate point")
    p.add_argument("--rates", nargs="+", required=True, metavar="DIR_OR_CSV", help="one per rate point")
    p.add_argument("--codec", required=True, help="the codec's name (the codec column and the plot label)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--quality", type=float_list, help="quality label of each rate point (default 0, 1, ...)")
    p.add_argument("--beta", type=float_list, help="realism label of each rate point, or one for all (default none)")
    p.add_argument("--dataset", help="the dataset column (default: the originals folder's name)")
    p.add_argument(
        "--resize",
        choices=RESIZE_RULES,
        default="none",
        help="resize reconstructions of another size to their original's with this Pillow filter "
        "(default none: a size mismatch is an error)",
    )
    p.add_argument(
        "--metrics",
        type=names_list,
        default=list(SCORE_METRICS),
        help=f"comma-separated, of {','.join(SCORE_METRICS)} (FID gives KID too; default all)",
    )
    p.add_argument("--fid-protocol", choices=["crdr", "ms_illm"], default="crdr", help="the shifted second cut")
    p.add_argument(
        "--fid-network",
        choices=FID_NETWORKS,
        default="torch-fidelity",
        help="the FID/KID Inception-v3 (default torch-fidelity; pytorch-fid: the network of the official CRDR CSVs)",
    )
    p.add_argument("--patch-size", type=int, default=256, help="FID/KID patch size (default 256)")
    p.add_argument("--reconstruction-8bit", choices=["round", "truncate"], default="round")
    p.add_argument("--weights-dir", help="folder with the LPIPS/DISTS/Inception weight files (never downloaded)")
    p.add_argument("--random-backbones", action="store_true", help="seeded random networks (tests, demos only)")
    p.add_argument("--overlay", nargs="*", default=[], metavar="CSV", help="other results.csv drawn in the RD plot")
    p.add_argument(
        "--with-official", metavar="DATASET", help="overlay the official CRDR results of this dataset (as published)"
    )
    p.add_argument(
        "--published",
        nargs="*",
        default=[],
        metavar="CSV",
        help="other papers' numbers to overlay (as published): columns bpp and metrics, optionally method, beta",
    )
    p.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="log the results table, RD line plots and figures to this W&B project (online when reachable, "
        "else offline into OUTPUT/wandb, as crdr evaluate)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(run="crdr.cli.score:run")
