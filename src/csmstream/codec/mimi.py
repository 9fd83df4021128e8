"""The Mimi codec: 24 kHz audio ↔ (K, T) codes at 12.5 frames/s, with an exact streaming decoder.

Parameter and buffer names equal those of a transformers-format Mimi checkpoint (the flat layout that
`save_pretrained` writes and that `sesame/csm-1b` stores under `codec_model.`), so those tensors load with
`load_state_dict(strict=True)` once the prefix is stripped.

Pipeline: encode = SEANet encoder → transformer → downsample (25 → 12.5 Hz) → split RVQ;
decode = RVQ lookup → upsample (12.5 → 25 Hz) → transformer → SEANet decoder.
Every stage of decode is causal, so `decode_step` carries a small state (see `stream_state.py`) and
emits exactly `frame_samples` per frame, equal to the whole-sequence decode.
"""

from __future__ import annotations

import torch
from torch import nn

from csmstream.codec.conv import CausalConv1d, CausalConvTranspose1d
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.quantizer import SplitResidualVectorQuantizer
from csmstream.codec.seanet import SeanetDecoder, SeanetEncoder
from csmstream.codec.stream_state import MimiDecoderState
from csmstream.codec.transformer import Transformer

# Whole-sequence decode runs the streaming path in chunks of this many frames: identical output, and the
# attention never builds a (T x T) matrix for long clips.
_DECODE_CHUNK_FRAMES = 128


class Mimi(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = SeanetEncoder(config)
        self.encoder_transformer = Transformer(config)
        self.decoder_transformer = Transformer(config)
        self.decoder = SeanetDecoder(config)
        self.quantizer = SplitResidualVectorQuantizer(config)
        self.downsample: CausalConv1d | None = None
        self.upsample: CausalConvTranspose1d | None = None
        if config.has_resampling:
            stride = config.latent_stride
            self.downsample = CausalConv1d(
                config.hidden_size,
                config.hidden_size,
                2 * stride,
                stride=stride,
                bias=False,
                pad_mode="replicate",
            )
            self.upsample = CausalConvTranspose1d(
                config.hidden_size,
                config.hidden_size,
                2 * stride,
                stride,
                groups=config.upsample_groups,
                bias=False,
            )
        # Each streaming conv learns where its state lives; the names double as the documented state layout.
        for name, module in self.named_modules():
            if isinstance(module, (CausalConv1d, CausalConvTranspose1d)):
                module.state_key = name

    @property
    def frame_samples(self) -> int:
        return self.config.frame_samples

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    # ---- encode -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """(B, 1, S) float audio at 24 kHz → (B, K, ceil(S / frame_samples)) long codes (whole clip).

        A partial last frame is handled as the reference does: each convolution pads its input on the right
        just enough to complete its last window (no zero-padding of the clip as a whole).
        """
        assert wav.dim() == 3 and wav.shape[1] == self.config.audio_channels, (
            f"wav must be (B, {self.config.audio_channels}, S), got {tuple(wav.shape)}"
        )
        num_codebooks = self.config.num_quantizers if num_codebooks is None else num_codebooks
        dtype = self.quantizer.semantic_residual_vector_quantizer.layers[0].codebook.embed_sum.dtype
        latents = self.encoder(wav.to(dtype))  # (B, hidden, S / hop)
        latents = self.encoder_transformer(latents.transpose(1, 2)).transpose(1, 2)
        if self.downsample is not None:
            latents = self.downsample(latents)  # (B, hidden, T)
        return self.quantizer.encode(latents, num_codebooks)

    # ---- decode -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K, T) codes → (B, 1, T * frame_samples) audio: the whole sequence from a fresh decoder."""
        assert codes.dim() == 3, f"codes must be (B, K, T), got {tuple(codes.shape)}"
        state = self.new_decoder_state(codes.shape[0])
        chunks = [
            self.decode_step(codes[..., start : start + _DECODE_CHUNK_FRAMES], state)
            for start in range(0, codes.shape[-1], _DECODE_CHUNK_FRAMES)
        ]
        if not chunks:
            return torch.zeros(codes.shape[0], self.config.audio_channels, 0, device=state.device)
        return torch.cat(chunks, dim=-1)

    def new_decoder_state(self, batch_size: int, device=None, dtype=None) -> MimiDecoderState:
        """A fresh streaming state with `batch_size` slots (see stream_state.py for its layout)."""
        assert self.config.pad_mode == "constant", (
            "streaming decode assumes zero history (pad_mode='constant')"
        )
        weight = self.decoder.layers[0].conv.weight
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        tensors: dict[str, torch.Tensor] = {}
        for module in self.modules():
            if isinstance(module, (CausalConv1d, CausalConvTranspose1d)) and not module.state_key.startswith(
                ("encoder", "downsample")
            ):
                tensors[module.state_key] = module.init_state(batch_size, device=device, dtype=dtype)
        cache = self.decoder_transformer.init_cache(batch_size, device=device, dtype=dtype)
        for layer_index in range(len(self.decoder_transformer.layers)):
            tensors[f"decoder_transformer.{layer_index}.k"] = cache[2 * layer_index]
            tensors[f"decoder_transformer.{layer_index}.v"] = cache[2 * layer_index + 1]
        positions = torch.zeros(batch_size, dtype=torch.long, device=device)
        return MimiDecoderState(tensors, positions)

    @torch.no_grad()
    def decode_step(
        self, codes: torch.Tensor, state: MimiDecoderState, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode the next frames of some slots: (B', K, T) codes → (B', 1, T * frame_samples) audio.

        `rows` (B',) long picks the slots the code rows belong to (None: all slots, in order); only those
        slots' state advances. Any split of a sequence into calls gives the same audio as `decode`.
        Rows must be distinct.
        """
        assert codes.dim() == 3, f"codes must be (B', K, T), got {tuple(codes.shape)}"
        expected_rows = state.batch_size if rows is None else rows.shape[0]
        assert codes.shape[0] == expected_rows, f"{codes.shape[0]} code rows for {expected_rows} state rows"
        if codes.shape[-1] == 0:  # nothing to decode: no audio, and the state must not move
            return torch.zeros(codes.shape[0], self.config.audio_channels, 0, device=state.device)
        if rows is not None:
            rows = rows.to(device=state.device, dtype=torch.long)
        states, positions = state.gather(rows)
        dtype = self.decoder.layers[0].conv.weight.dtype

        # 1. codes → latents at the frame rate, then up to the SEANet latent rate.
        latents = self.quantizer.decode(codes.to(state.device)).to(dtype)  # (B', hidden, T)
        if self.upsample is not None:
            latents, states["upsample"] = self.upsample.step(latents, states["upsample"])  # (B', hidden, L)

        # 2. transformer over the new positions, attending to each row's window of history.
        num_layers = len(self.decoder_transformer.layers)
        cache = []
        for layer_index in range(num_layers):
            cache += [
                states[f"decoder_transformer.{layer_index}.k"],
                states[f"decoder_transformer.{layer_index}.v"],
            ]
        hidden, cache = self.decoder_transformer.step(latents.transpose(1, 2), positions, cache)
        for layer_index in range(num_layers):
            states[f"decoder_transformer.{layer_index}.k"] = cache[2 * layer_index]
            states[f"decoder_transformer.{layer_index}.v"] = cache[2 * layer_index + 1]

        # 3. SEANet decoder to audio; then commit the advanced state of these rows.
        audio = self.decoder.step(hidden.transpose(1, 2), states)  # (B', 1, T * frame_samples)
        state.scatter(rows, states, positions + hidden.shape[1])
        return audio
