"""DataLoader workers leave stop signals sent to the whole process group to the main process."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader

#: Signals that SLURM (submitit's pre-timeout SIGUSR2, scancel's SIGTERM), ``timeout`` or a terminal
#: (SIGINT) send to every process of a job. The main process saves ``last.ckpt`` and stops
#: (``crdr.lit.callbacks.CheckpointOnSignal``, Lightning's SIGTERM handler); a worker killed by one
#: would make the main process fail instead.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2})


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Blocks ``STOP_SIGNALS`` in the calling thread for the block (a signal meanwhile waits, then arrives).

    Processes forked meanwhile start with them blocked in every thread, including the threads that
    at-fork handlers start in the child before any ``worker_init_fn`` runs (W&B's OpenTelemetry
    exporters do): a thread with the signals unblocked would take one and die of it.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class StopSignalSafeDataLoader(DataLoader):
    """A DataLoader whose workers start with ``STOP_SIGNALS`` blocked (give it a :class:`WorkerInit`)."""

    def __iter__(self) -> Any:
        with stop_signals_blocked():  # worker processes start while the iterator is made
            return super().__iter__()


class WorkerInit:
    """A DataLoader ``worker_init_fn``: the worker ignores ``STOP_SIGNALS`` unless its parent (the main
    process) sends them, then ``then(worker_id)`` runs.

    So a signal to the whole process group reaches the main process alone, and the loader shuts its
    workers down as usual; the loader's ``terminate()`` of a worker that does not stop in time (a
    SIGTERM from the parent) still ends it at once, as SIGTERM would. A worker also exits when the
    main process dies (SIGKILL included): PyTorch's workers watch their parent. The worker must have
    been started under :func:`stop_signals_blocked` (:class:`StopSignalSafeDataLoader` does that), or
    threads started in it before this runs still die of the signals.
    """

    def __init__(self, then: Callable[[int], None] | None = None) -> None:
        self.then = then

    def __call__(self, worker_id: int) -> None:
        # blocked in every thread (inherited from the forking thread, and so in all threads started
        # later): the signals queue up for _obey_parent_only instead of running the inherited handlers
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        threading.Thread(target=_obey_parent_only, args=(os.getppid(),), name="stop-signals", daemon=True).start()
        if self.then is not None:
            self.then(worker_id)


def _obey_parent_only(parent: int) -> None:
    """Waits for ``STOP_SIGNALS``; one from ``parent`` ends this process with the signal's exit status."""
    while True:
        info = signal.sigwaitinfo(STOP_SIGNALS)
        if info.si_pid == parent:
            os._exit(128 + info.si_signo)


def worker_init_fn(rank: int) -> WorkerInit:
    """``WorkerInit`` chained with the seeding Lightning adds after ``seed_everything(workers=True)``
    (which it adds only to loaders without a ``worker_init_fn`` of their own)."""
    seeded = bool(int(os.environ.get("PL_SEED_WORKERS", "0")))
    return WorkerInit(partial(pl_worker_init_function, rank=rank) if seeded else None)
