"""Causal 1-d convolutions of Mimi, each with a whole-clip `forward` and an exact streaming `step`.

A causal conv only looks back, so streaming it needs the last `padding_total` input samples of the
previous call (its state). A causal transposed conv spreads each input step over `kernel_size`
outputs; streaming it needs the not-yet-complete `kernel_size - stride` outputs (the overlap-add
tail) of the previous call. Both states are plain tensors with the batch first, owned by the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Module):
    """Conv1d padded on the left only (the reference's causal padding). Weights live in `.conv`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        pad_mode: str = "constant",
    ):
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride, dilation=dilation, groups=groups, bias=bias
        )
        self.in_channels = in_channels
        self.stride = stride
        self.pad_mode = pad_mode
        self.effective_kernel_size = (kernel_size - 1) * dilation + 1
        self.padding_total = self.effective_kernel_size - stride
        self.state_key = ""  # set by the owning model: where this conv's state lives in a state dict

    def _extra_right_padding(self, length: int) -> int:
        # Pad the right just enough that the last (partial) stride window is computed, like the reference.
        num_windows = -(-(length - self.effective_kernel_size + self.padding_total) // self.stride) + 1
        ideal_length = (num_windows - 1) * self.stride + self.effective_kernel_size - self.padding_total
        return max(ideal_length - length, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, S) → (B, C_out, ceil(S / stride)), whole clip, zero history."""
        extra = self._extra_right_padding(x.shape[-1])
        mode = "replicate" if self.pad_mode == "replicate" else "constant"
        x = F.pad(x, (self.padding_total, extra), mode=mode)
        return self.conv(x)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        """(B, C_in, padding_total) zeros: the history before the first sample (constant padding)."""
        return torch.zeros(batch_size, self.in_channels, self.padding_total, device=device, dtype=dtype)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, S) new samples + state → (B, C_out, S) outputs + new state (stride-1 convs only)."""
        assert self.stride == 1, "streaming is only exact for stride-1 convs (all of Mimi's decoder)"
        if self.padding_total == 0:
            return self.conv(x), state
        x = torch.cat([state, x], dim=-1)  # (B, C_in, padding_total + S)
        return self.conv(x), x[..., -self.padding_total :]


class CausalConvTranspose1d(nn.Module):
    """ConvTranspose1d whose trailing `kernel_size - stride` outputs are trimmed (all on the right)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        self.conv = nn.ConvTranspose1d(
            in_channels, out_channels, kernel_size, stride, groups=groups, bias=bias
        )
        self.out_channels = out_channels
        self.stride = stride
        self.tail_samples = kernel_size - stride
        self.state_key = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) → (B, C_out, T * stride), whole clip."""
        y = self.conv(x)
        return y[..., : y.shape[-1] - self.tail_samples]

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        """(B, C_out, kernel_size - stride) zeros: no pending overlap-add contributions yet."""
        return torch.zeros(batch_size, self.out_channels, self.tail_samples, device=device, dtype=dtype)

    def step(self, x: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, T) + tail → (B, C_out, T * stride) finished outputs + the new tail (bias not in it)."""
        num_out = x.shape[-1] * self.stride
        # Without bias: the bias belongs to each output sample once, not to each overlapping contribution.
        y = F.conv_transpose1d(x, self.conv.weight, None, self.stride, groups=self.conv.groups)
        y = torch.cat([y[..., : self.tail_samples] + tail, y[..., self.tail_samples :]], dim=-1)
        out = y[..., :num_out]
        if self.conv.bias is not None:
            out = out + self.conv.bias[:, None]
        return out, y[..., num_out:]
