"""Fourier embedding of the realism weight beta."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FourierEmbedding(nn.Module):
    """Maps beta in [0, max_beta] to ``[sin(b * 2^k)]_k ++ [cos(b * 2^k)]_k``, k = 0..L-1.

    ``b = (beta / max_beta - 0.5) * 2`` lies in [-1, 1]; with ``use_pi`` the frequencies are
    ``pi * 2^k``. All arithmetic is float32, as in the official code. Output: (B, 2L).
    """

    def __init__(self, num_frequencies: int = 10, max_beta: float = 5.12, use_pi: bool = False) -> None:
        super().__init__()
        self.num_frequencies = num_frequencies
        self.max_beta = max_beta
        self.use_pi = use_pi
        freqs = 2.0 ** torch.arange(num_frequencies, dtype=torch.float32)
        if use_pi:
            freqs = freqs * torch.pi
        self.register_buffer("frequencies", freqs, persistent=False)

    @property
    def dim(self) -> int:
        return 2 * self.num_frequencies

    def forward(self, beta: Tensor) -> Tensor:
        """beta: (B,) float32 in [0, max_beta]. Returns (B, 2L)."""
        b = (beta.to(torch.float32) / torch.tensor(self.max_beta, dtype=torch.float32) - 0.5) * 2
        angles = b.to(self.frequencies.device)[:, None] * self.frequencies[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    def extra_repr(self) -> str:
        return f"num_frequencies={self.num_frequencies}, max_beta={self.max_beta}, use_pi={self.use_pi}"
