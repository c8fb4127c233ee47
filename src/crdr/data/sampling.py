"""The training sample stream: endless, sharded across ranks, and resumable at any batch.

Training counts iterations, not epochs, so the stream never ends: position p of the global stream
is sample ``perm_e[p mod n]`` of epoch ``e = p // n`` (``perm_e`` a permutation seeded by (seed, e)),
augmented with a generator seeded by (seed, p). Everything is a function of (seed, p): neither the
number of data-loader workers nor a restart changes which crops a run trains on.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

_PERMUTATION, _SAMPLE = 0, 1


def derived_seed(seed: int, domain: int, value: int) -> int:
    """A 63-bit seed for (seed, domain, value), well mixed (numpy's SeedSequence)."""
    state = np.random.SeedSequence([seed, domain, value]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class ResumableShuffleSampler(Sampler[tuple[int, int]]):
    """Yields ``(dataset index, augmentation seed)`` for one rank, forever.

    Global batch b is positions ``[b * B * W, (b + 1) * B * W)`` (B: per-rank batch size, W: world
    size); rank r takes the r-th run of B positions in it. W ranks with batch B therefore see
    exactly the samples of one process with batch B * W. ``start_batch`` skips the batches already
    trained on (a resumed run starts where the checkpoint left off).
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        if num_items <= 0 or batch_size <= 0:
            raise ValueError(f"need items and a positive batch size, got {num_items} items, batch {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, permutation = -1, []
        batch = self.start_batch
        while True:
            first = (batch * self.world_size + self.rank) * self.batch_size
            for position in range(first, first + self.batch_size):
                if position // self.num_items != epoch:
                    epoch = position // self.num_items
                    generator = torch.Generator().manual_seed(derived_seed(self.seed, _PERMUTATION, epoch))
                    permutation = torch.randperm(self.num_items, generator=generator).tolist()
                yield permutation[position % self.num_items], derived_seed(self.seed, _SAMPLE, position)
            batch += 1
