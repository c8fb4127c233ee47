"""``crdr``: the command-line tool (compress, decompress, reconstruct, evaluate, plot, shard, data)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from crdr.cli import codec_commands, plot, reconstruct, shard

    parser = argparse.ArgumentParser(prog="crdr", description="Controllable generative image compression (CRDR).")
    commands = parser.add_subparsers(dest="command", required=True)
    codec_commands.add_parsers(commands)
    reconstruct.add_parser(commands)
    plot.add_parsers(commands)
    shard.add_parser(commands)
    commands.add_parser("evaluate", help="q x beta grid of metrics (Hydra overrides: crdr evaluate --help)")
    commands.add_parser("data", help="fetch and verify the paper's datasets (crdr data --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"]:  # a Hydra app: the rest of the line is Hydra overrides
        from crdr.evaluation.app import main as evaluate

        evaluate(argv[1:])
        return 0
    if argv[:1] == ["data"]:  # kept free of torch so that it starts (and fails without network) at once
        from crdr.cli.data import main as data

        return data(argv[1:])
    from crdr.checkpoints import CheckpointError
    from crdr.config import ConfigError
    from crdr.io import ImageReadError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, ConfigError, ImageReadError, ValueError, OSError) as err:
        print(f"crdr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
