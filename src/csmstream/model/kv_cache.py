"""Keys and values of many independent sessions, one *slot* per session.

The tensors are allocated once, (layers, num_slots, kv_heads, max_rows, head_dim), so a step over a
changing set of sessions never reallocates. Each slot is an independent sequence: a call writes rows
[start, start + T) of the slots it names and attends over [0, start + t] of the same slot only.
Rows past a slot's current length hold stale data of an earlier session; attention masks them out,
which is why the buffers start at zero (masked stale rows must stay finite: 0 * NaN would leak).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    keys: torch.Tensor  # (L, N, H_kv, R, D) rotary-embedded keys; N slots, R rows
    values: torch.Tensor  # (L, N, H_kv, R, D)

    @classmethod
    def allocate(
        cls,
        num_layers: int,
        num_slots: int,
        num_kv_heads: int,
        max_rows: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        assert num_slots > 0 and max_rows > 0, f"need slots and rows, got {num_slots=} {max_rows=}"
        shape = (num_layers, num_slots, num_kv_heads, max_rows, head_dim)
        return cls(
            keys=torch.zeros(shape, device=device, dtype=dtype),
            values=torch.zeros(shape, device=device, dtype=dtype),
        )

    @property
    def num_layers(self) -> int:
        return self.keys.shape[0]

    @property
    def num_slots(self) -> int:
        return self.keys.shape[1]

    @property
    def max_rows(self) -> int:
        return self.keys.shape[3]

    def write(
        self,
        layer: int,
        slot_ids: torch.Tensor | None,
        positions: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
    ) -> None:
        """Store (B, T, H_kv, D) keys/values at `positions` (B, T) of slots `slot_ids` (B,) (None: slots 0..B-1)."""
        batch = positions.shape[0]
        if slot_ids is None:
            slot_ids = torch.arange(batch, device=positions.device)
        rows = slot_ids[:, None]  # (B, 1) broadcast against (B, T) positions
        # advanced indices around a slice put the indexed dims first: the target view is (B, T, H_kv, D)
        self.keys[layer][rows, :, positions] = keys
        self.values[layer][rows, :, positions] = values

    def read(
        self, layer: int, slot_ids: torch.Tensor | None, batch: int, kv_len: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H_kv, kv_len, D) keys and values of the given slots; a view when `slot_ids` is None."""
        assert kv_len <= self.max_rows, f"kv_len {kv_len} exceeds the cache's {self.max_rows} rows"
        if slot_ids is None:
            return self.keys[layer, :batch, :, :kv_len], self.values[layer, :batch, :, :kv_len]
        return self.keys[layer, slot_ids, :, :kv_len], self.values[layer, slot_ids, :, :kv_len]

    def reset(self, slot_ids: torch.Tensor | None = None) -> None:
        """Zero the rows of some slots (all when None). Not needed for correctness, only for hygiene."""
        if slot_ids is None:
            self.keys.zero_()
            self.values.zero_()
        else:
            self.keys[:, slot_ids] = 0
            self.values[:, slot_ids] = 0
