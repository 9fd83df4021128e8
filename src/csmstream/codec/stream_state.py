"""Per-slot streaming state of the Mimi decoder.

Layout (B = slots, the server's max sessions; every tensor has the slot first):

- `tensors["decoder.layers.{i}"]` / `["decoder.layers.{i}.block.{j}"]`: (B, C_in, padding_total) the last
  input samples of each causal conv of the SEANet decoder (kernel-1 convs keep an empty (B, C_in, 0)).
- `tensors["upsample"]`, `["decoder.layers.{i}"]` for transposed convs: (B, C_out, kernel - stride) the
  overlap-add tail, i.e. partial outputs still waiting for the next input step (bias not yet added).
- `tensors["decoder_transformer.{l}.k"]` / `.v`: (B, H_kv, sliding_window - 1, head_dim) the last keys
  (already rotated) and values of layer l; the newest key is last. Entries older than the row's history
  are masked out by position, never read.
- `positions`: (B,) long, decoder-transformer positions consumed so far (latent_stride per frame).

A slot is restarted by `reset(mask)`: zeros everywhere, position 0, which is exactly a fresh decoder.
`StagedDecoderState` holds one step's advanced rows back until the caller writes them (after the rest of its
step succeeded), so a failed step never leaves a slot's decoder a frame ahead.
"""

from __future__ import annotations

import torch


class MimiDecoderState:
    """Streaming state of all slots: `tensors` (name → (B, ...)) and `positions` (B,), layout above.

    Create it with `Mimi.new_decoder_state`; use it under the same grad mode it was created in
    (tensors made under `torch.inference_mode()` cannot be updated outside it).
    """

    def __init__(self, tensors: dict[str, torch.Tensor], positions: torch.Tensor):
        assert positions.dim() == 1, f"positions must be (B,), got {tuple(positions.shape)}"
        for name, tensor in tensors.items():
            assert tensor.shape[0] == positions.shape[0], f"state {name} has {tensor.shape[0]} rows"
        self.tensors = tensors
        self.positions = positions

    @property
    def batch_size(self) -> int:
        return self.positions.shape[0]

    @property
    def device(self) -> torch.device:
        return self.positions.device

    def reset(self, mask: torch.Tensor) -> None:
        """Clear the slots where `mask` (B,) bool is True, in place (no Python loop over rows)."""
        assert mask.shape == (self.batch_size,), f"mask must be ({self.batch_size},), got {tuple(mask.shape)}"
        mask = mask.to(device=self.device, dtype=torch.bool)
        for tensor in self.tensors.values():
            tensor.masked_fill_(mask.view(-1, *([1] * (tensor.dim() - 1))), 0)
        self.positions.masked_fill_(mask, 0)

    def gather(self, rows: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The state of the chosen rows (all rows, in order, for None) as fresh tensors to step on."""
        if rows is None:
            return dict(self.tensors), self.positions
        return {k: v.index_select(0, rows) for k, v in self.tensors.items()}, self.positions.index_select(
            0, rows
        )

    def scatter(
        self,
        rows: torch.Tensor | None,
        tensors: dict[str, torch.Tensor],
        positions: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> None:
        """Write stepped rows back in place (static storage, so the buffers keep their addresses).

        `valid` (B',) bool, optional: rows where it is False keep their old state (rows that were computed
        only to fill a static batch shape)."""
        for name, tensor in self.tensors.items():
            new = tensors[name]
            if valid is not None:
                old = tensor if rows is None else tensor.index_select(0, rows)
                new = torch.where(valid.view(-1, *([1] * (new.dim() - 1))), new, old)
            if rows is None:
                tensor.copy_(new)
            else:
                tensor.index_copy_(0, rows, new)
        if valid is not None:
            old = self.positions if rows is None else self.positions.index_select(0, rows)
            positions = torch.where(valid, positions, old)
        if rows is None:
            self.positions.copy_(positions)
        else:
            self.positions.index_copy_(0, rows, positions)


class StagedDecoderState:
    """A `MimiDecoderState` whose writes wait: `Mimi.decode_step` reads the base state as usual, but the
    advanced rows stay here (`rows`, `tensors`, `positions`) until the caller writes them with
    `base.scatter` once the rest of its step succeeded. A step that fails before that leaves the base state
    as it was, so the same frame can be decoded again."""

    def __init__(self, base: MimiDecoderState):
        self.base = base
        self.rows: torch.Tensor | None = None
        self.tensors: dict[str, torch.Tensor] | None = None
        self.positions: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.base.batch_size

    @property
    def device(self) -> torch.device:
        return self.base.device

    def gather(self, rows: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.base.gather(rows)

    def scatter(
        self, rows: torch.Tensor | None, tensors: dict[str, torch.Tensor], positions: torch.Tensor
    ) -> None:
        self.rows, self.tensors, self.positions = rows, tensors, positions
