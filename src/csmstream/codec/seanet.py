"""SEANet encoder / decoder stacks of Mimi (convolutions + ELU + residual blocks).

Module indices inside `layers` (ELUs included) match the checkpoint's names, e.g. `decoder.layers.2.conv.weight`.
The decoder has a streaming `step`; the encoder is whole-clip only (it only encodes reference audio).
"""

from __future__ import annotations

import torch
from torch import nn

from csmstream.codec.conv import CausalConv1d, CausalConvTranspose1d
from csmstream.codec.mimi_config import MimiConfig

StreamStates = dict[str, torch.Tensor]


class ResnetBlock(nn.Module):
    """x + conv1x1(elu(conv_k(elu(x)))): `block` = [ELU, conv, ELU, conv] as in the checkpoint."""

    def __init__(self, config: MimiConfig, channels: int, dilations: tuple[int, int]):
        super().__init__()
        hidden = channels // config.compress
        kernel_sizes = (config.residual_kernel_size, 1)
        self.block = nn.ModuleList(
            [
                nn.ELU(),
                CausalConv1d(
                    channels, hidden, kernel_sizes[0], dilation=dilations[0], pad_mode=config.pad_mode
                ),
                nn.ELU(),
                CausalConv1d(
                    hidden, channels, kernel_sizes[1], dilation=dilations[1], pad_mode=config.pad_mode
                ),
            ]
        )
        self.shortcut = (
            CausalConv1d(channels, channels, 1, pad_mode=config.pad_mode)
            if config.use_conv_shortcut
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        for layer in self.block:
            x = layer(x)
        return residual + x

    def step(self, x: torch.Tensor, states: StreamStates) -> torch.Tensor:
        residual = x
        if self.shortcut is not None:
            residual, states[self.shortcut.state_key] = self.shortcut.step(x, states[self.shortcut.state_key])
        x = _step_layers(self.block, x, states)
        return residual + x


def _step_layers(layers: nn.ModuleList, x: torch.Tensor, states: StreamStates) -> torch.Tensor:
    """Run a stack in streaming mode: stateful layers read and replace their entry of `states`."""
    for layer in layers:
        if isinstance(layer, (CausalConv1d, CausalConvTranspose1d)):
            x, states[layer.state_key] = layer.step(x, states[layer.state_key])
        elif isinstance(layer, ResnetBlock):
            x = layer.step(x, states)
        else:
            x = layer(x)
    return x


class SeanetEncoder(nn.Module):
    """(B, audio_channels, S) audio → (B, hidden_size, S / hop_samples) latents."""

    def __init__(self, config: MimiConfig):
        super().__init__()
        layers: list[nn.Module] = [
            CausalConv1d(
                config.audio_channels, config.num_filters, config.kernel_size, pad_mode=config.pad_mode
            )
        ]
        channels = config.num_filters
        # The encoder downsamples with the decoder's ratios in reverse order.
        for ratio in reversed(config.upsampling_ratios):
            for j in range(config.num_residual_layers):
                layers.append(ResnetBlock(config, channels, (config.dilation_growth_rate**j, 1)))
            layers.append(nn.ELU())
            layers.append(
                CausalConv1d(
                    channels, channels * 2, kernel_size=ratio * 2, stride=ratio, pad_mode=config.pad_mode
                )
            )
            channels *= 2
        layers.append(nn.ELU())
        layers.append(
            CausalConv1d(channels, config.hidden_size, config.last_kernel_size, pad_mode=config.pad_mode)
        )
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class SeanetDecoder(nn.Module):
    """(B, hidden_size, L) latents → (B, audio_channels, L * hop_samples) audio."""

    def __init__(self, config: MimiConfig):
        super().__init__()
        channels = config.num_filters * 2 ** len(config.upsampling_ratios)
        layers: list[nn.Module] = [
            CausalConv1d(config.hidden_size, channels, config.kernel_size, pad_mode=config.pad_mode)
        ]
        for ratio in config.upsampling_ratios:
            layers.append(nn.ELU())
            layers.append(CausalConvTranspose1d(channels, channels // 2, kernel_size=ratio * 2, stride=ratio))
            for j in range(config.num_residual_layers):
                layers.append(ResnetBlock(config, channels // 2, (config.dilation_growth_rate**j, 1)))
            channels //= 2
        layers.append(nn.ELU())
        layers.append(
            CausalConv1d(
                config.num_filters, config.audio_channels, config.last_kernel_size, pad_mode=config.pad_mode
            )
        )
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def step(self, x: torch.Tensor, states: StreamStates) -> torch.Tensor:
        """(B, hidden_size, L) new latent steps → (B, audio_channels, L * hop_samples) new audio."""
        return _step_layers(self.layers, x, states)
