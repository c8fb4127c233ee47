"""``crdr``: the command-line tool (compress, decompress, reconstruct, evaluate, merge, score, plot, shard, data,
models).

Arguments are parsed without importing torch (crdr.cli.parser); the subcommand's implementation is
imported after parsing, so ``--help`` and argument errors come at once.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from crdr.cli.parser import build_parser


def implementation(target: str) -> Callable:
    """The function named ``"package.module:function"`` (a subcommand's ``args.run``), imported now."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@contextmanager
def frozen_imports() -> Iterator[None]:
    """Imports torch and the rest inside the block without cyclic garbage collection, then moves every
    object alive to the collector's permanent generation (``gc.freeze``): in a ``crdr`` process they
    live until it exits, and walking them in each collection and at exit costs about 0.5 s of a codec
    command. A caller that is not the whole process undoes it with ``gc.unfreeze()``."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``crdr ARGS`` (default: the process's arguments) and returns the exit status."""
    for_the_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"]:  # a Hydra app: the rest of the line is Hydra overrides
        from crdr.cli.evaluate import main as evaluate

        evaluate(argv[1:])
        return 0
    if argv[:1] == ["data"]:  # kept free of torch so that it starts (and fails without network) at once
        from crdr.cli.data import main as data

        return data(argv[1:])
    args = build_parser().parse_args(argv)
    with frozen_imports():
        run = implementation(args.run)
        from crdr.io.errors import USER_ERRORS
    try:
        return run(args)
    except (*USER_ERRORS, ValueError, OSError) as err:
        print(f"crdr {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if not for_the_process:  # called from Python: its objects must stay collectable
            gc.unfreeze()


if __name__ == "__main__":
    sys.exit(main())
