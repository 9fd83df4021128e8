"""Mimi's split residual vector quantizer: codes ↔ latents.

Codebook 0 .. num_semantic - 1 form the "semantic" RVQ, the rest the "acoustic" RVQ; each RVQ has its own
projection in and out of the codebook space, and the two decoded latents are summed. A codebook stores
`embed_sum` and `cluster_usage` (EMA statistics); the centroid is their ratio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from csmstream.codec.mimi_config import MimiConfig

_USAGE_EPSILON = 1e-5  # the reference's floor on cluster_usage when dividing


class Codebook(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        self.register_buffer("initialized", torch.ones(1))
        self.register_buffer("cluster_usage", torch.ones(config.codebook_size))
        self.register_buffer("embed_sum", torch.zeros(config.codebook_size, config.codebook_dim))

    def centroids(self) -> torch.Tensor:
        """(N, D) all code vectors."""
        return self.embed_sum / self.cluster_usage.clamp(min=_USAGE_EPSILON)[:, None]

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(...) codes → (..., D) vectors, computing only the rows asked for (cheap per streamed frame)."""
        usage = self.cluster_usage.clamp(min=_USAGE_EPSILON)
        return F.embedding(codes, self.embed_sum) / F.embedding(codes, usage[:, None])

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) vectors → (N,) index of the nearest centroid (Euclidean)."""
        distances = torch.cdist(x[None].float(), self.centroids()[None].float(), p=2)[0]
        return distances.argmin(dim=-1)


class _Codebooks(nn.Module):
    """Holds the checkpoint's `layers.{i}.codebook.*` nesting."""

    def __init__(self, config: MimiConfig):
        super().__init__()
        self.codebook = Codebook(config)


class ResidualVectorQuantizer(nn.Module):
    def __init__(self, config: MimiConfig, num_quantizers: int):
        super().__init__()
        self.layers = nn.ModuleList([_Codebooks(config) for _ in range(num_quantizers)])
        self.input_proj: nn.Conv1d | None = None
        self.output_proj: nn.Conv1d | None = None
        if config.vector_quantization_hidden_dimension != config.hidden_size:
            dim = config.vector_quantization_hidden_dimension
            self.input_proj = nn.Conv1d(config.hidden_size, dim, 1, bias=False)
            self.output_proj = nn.Conv1d(dim, config.hidden_size, 1, bias=False)

    def encode(self, latents: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        """(B, hidden, T) → (B, num_quantizers, T) codes, each codebook quantizing what the previous left."""
        residual = self.input_proj(latents) if self.input_proj is not None else latents  # (B, D, T)
        batch, dim, num_frames = residual.shape
        all_codes = []
        for layer in self.layers[:num_quantizers]:
            codes = layer.codebook.nearest(residual.transpose(1, 2).reshape(-1, dim)).view(batch, num_frames)
            residual = residual - layer.codebook.lookup(codes).transpose(1, 2)
            all_codes.append(codes)
        return torch.stack(all_codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K, T) codes, K <= num_quantizers → (B, hidden, T) latents."""
        total = self.layers[0].codebook.lookup(codes[:, 0])  # (B, T, D)
        for i in range(1, codes.shape[1]):
            total = total + self.layers[i].codebook.lookup(codes[:, i])
        total = total.transpose(1, 2)
        return self.output_proj(total) if self.output_proj is not None else total


class SplitResidualVectorQuantizer(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        self.num_quantizers = config.num_quantizers
        self.num_semantic = config.num_semantic_quantizers
        self.semantic_residual_vector_quantizer = ResidualVectorQuantizer(config, self.num_semantic)
        self.acoustic_residual_vector_quantizer = ResidualVectorQuantizer(
            config, config.num_quantizers - self.num_semantic
        )

    def encode(self, latents: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        """(B, hidden, T) → (B, num_quantizers, T) codes."""
        assert self.num_semantic <= num_quantizers <= self.num_quantizers, (
            f"num_quantizers must be in [{self.num_semantic}, {self.num_quantizers}], got {num_quantizers}"
        )
        codes = self.semantic_residual_vector_quantizer.encode(latents, self.num_semantic)
        if num_quantizers > self.num_semantic:
            acoustic = self.acoustic_residual_vector_quantizer.encode(
                latents, num_quantizers - self.num_semantic
            )
            codes = torch.cat([codes, acoustic], dim=1)
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K, T) codes → (B, hidden, T) latents; K may be fewer than num_quantizers."""
        assert self.num_semantic <= codes.shape[1] <= self.num_quantizers, (
            f"need {self.num_semantic}..{self.num_quantizers} codebooks, got {codes.shape[1]}"
        )
        latents = self.semantic_residual_vector_quantizer.decode(codes[:, : self.num_semantic])
        if codes.shape[1] > self.num_semantic:
            latents = latents + self.acoustic_residual_vector_quantizer.decode(codes[:, self.num_semantic :])
        return latents
