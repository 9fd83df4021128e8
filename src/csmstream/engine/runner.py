"""The runner executes what the scheduler decided. It alone touches device tensors.

Buffers are allocated once for `max_slots`: the KV cache (one row per slot), the backbone's last hidden
state per slot (the input of the slot's next frame), per-slot sampling settings, and the streaming Mimi
decoder state. One `step` makes one 80 ms frame for every scheduled slot in three batched stages and ends
with a single host transfer:

  hidden[slots] ─▶ generate_frame (codebook 0 + depth decoder)       (B, K) codes
               ─▶ streaming Mimi decode (per-slot state)             (B, S) pcm
               ─▶ backbone on the new frame's row at each slot's own position → hidden[slots]
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from csmstream.codec.mimi import Mimi
from csmstream.engine.prefix_cache import PrefixEntry
from csmstream.model.csm import CsmModel
from csmstream.model.sampling import BatchSampling, SamplingParams, topk_bound

KV_LEN_BUCKET_ROWS = 128  # attention spans a multiple of this many rows: few distinct shapes, little waste


@dataclass(frozen=True)
class StepOutput:
    codes: np.ndarray  # (B, K) int64 codes of this frame
    pcm: np.ndarray  # (B, S) float32 audio of this frame (S = 1920 at 24 kHz)
    is_eos: np.ndarray  # (B,) bool: the frame was all zeros, the end of the utterance (its pcm is not audio)


def batch_buckets(max_slots: int) -> tuple[int, ...]:
    """Batch sizes a compiled step is specialised for: powers of two, then max_slots."""
    sizes, b = [], 1
    while b < max_slots:
        sizes.append(b)
        b *= 2
    return (*sizes, max_slots)


def compile_enabled(requested: bool, device: torch.device) -> bool:
    """torch.compile only on CUDA, and only when neither the settings nor CSMSTREAM_NO_COMPILE=1 turn it off."""
    return requested and device.type == "cuda" and os.environ.get("CSMSTREAM_NO_COMPILE", "0") != "1"


class ModelRunner:
    def __init__(
        self,
        model: CsmModel,
        codec: Mimi,
        max_slots: int,
        max_rows: int,
        compile: bool = False,
        pad_to_buckets: bool | None = None,
    ):
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.model = model
        self.codec = codec
        self.max_slots = max_slots
        self.max_rows = max_rows
        self.num_codebooks = model.config.num_codebooks
        compiled = compile_enabled(compile, self.device)
        # A compiled step is specialised per batch size: pad batches up to a few bucket sizes with rows of a
        # scratch slot (index max_slots, never given to a session) instead of compiling for every size.
        self.pad_to_buckets = compiled if pad_to_buckets is None else pad_to_buckets
        self.buckets = batch_buckets(max_slots)
        self.scratch_slot = max_slots
        num_rows = max_slots + 1  # + the scratch slot
        # 1. buffers, allocated once
        self.cache = model.new_kv_cache(num_rows, max_rows, device=self.device, dtype=self.dtype)
        hidden_dim = model.config.backbone.dim
        self.hidden = torch.zeros(num_rows, hidden_dim, device=self.device, dtype=self.dtype)  # (N, D)
        self.temperature = torch.ones(num_rows, device=self.device)
        self.topk = torch.ones(num_rows, dtype=torch.int64, device=self.device)
        self.greedy = torch.zeros(num_rows, dtype=torch.bool, device=self.device)
        self.seed = torch.zeros(num_rows, dtype=torch.int64, device=self.device)
        self.topk_host = [1] * num_rows  # the same top-k values on the host: a bound for the sampler, no sync
        self.decoder_state = codec.new_decoder_state(num_rows, device=self.device)
        # 2. the per-frame function, compiled on CUDA (static shapes per batch bucket and kv bucket)
        self._frame_fn = self._make_frame
        if compiled:
            self._frame_fn = torch.compile(self._make_frame, dynamic=False)

    @property
    def kv_bytes_per_slot(self) -> int:
        return (
            (self.cache.keys.numel() + self.cache.values.numel())
            * self.cache.keys.element_size()
            // self.max_slots
        )

    # ---- a slot's life -------------------------------------------------------------------------------
    @torch.inference_mode()
    def start_slot(self, slot: int, sampling: SamplingParams) -> None:
        """A new session takes `slot`: its sampling settings, a fresh decoder state. (Stale KV rows past the
        session's length are masked out by attention, so the cache row needs no clearing.)"""
        assert sampling.seed is not None, "resolve the seed (SamplingParams.with_seed) before a slot starts"
        self.temperature[slot] = sampling.temperature
        self.topk[slot] = sampling.topk
        self.topk_host[slot] = sampling.topk
        self.greedy[slot] = sampling.greedy
        self.seed[slot] = sampling.seed
        mask = torch.zeros(self.max_slots + 1, dtype=torch.bool, device=self.device)
        mask[slot] = True
        self.decoder_state.reset(mask)

    @torch.inference_mode()
    def load_prefix(self, slot: int, entry: PrefixEntry) -> None:
        """Copy a cached voice prefix into rows [0, T) of the slot instead of prefilling them again."""
        self.cache.keys[:, slot, :, : entry.num_rows] = entry.keys
        self.cache.values[:, slot, :, : entry.num_rows] = entry.values

    @torch.inference_mode()
    def save_prefix(self, slot: int, num_rows: int) -> PrefixEntry:
        return PrefixEntry(
            num_rows=num_rows,
            keys=self.cache.keys[:, slot, :, :num_rows].clone(),
            values=self.cache.values[:, slot, :, :num_rows].clone(),
        )

    @torch.inference_mode()
    def prefill(
        self, slot: int, tokens: torch.Tensor, mask: torch.Tensor, start_row: int, is_last: bool
    ) -> None:
        """Write prompt rows [start_row, start_row + T) of one slot; tokens/mask (T, 33)."""
        num_rows = tokens.shape[0]
        assert start_row + num_rows <= self.max_rows, "prompt rows exceed the slot's window"
        embeds = self.model.embed_rows(tokens[None].to(self.device), mask[None].to(self.device))  # (1, T, D)
        slot_ids = torch.tensor([slot], device=self.device)
        starts = torch.tensor([start_row], device=self.device)
        kv_len = self._kv_len(start_row + num_rows)
        hidden = self.model.backbone_forward(embeds, self.cache, slot_ids, starts, kv_len)  # (1, T, D)
        if is_last:
            self.hidden[slot] = hidden[0, -1]

    # ---- the batched step ----------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, slots: list[int], positions: list[int], frame_indices: list[int]) -> StepOutput:
        """One frame for each slot in `slots`; `positions[i]` is the row its new frame takes in the cache."""
        assert slots and len(slots) == len(positions) == len(frame_indices), "one position per slot"
        batch = len(slots)
        if self.pad_to_buckets:
            padded = next(b for b in self.buckets if b >= batch)
            pad = padded - batch
            slots = [*slots, *([self.scratch_slot] * pad)]
            positions = [*positions, *([0] * pad)]
            frame_indices = [*frame_indices, *([0] * pad)]
        slot_ids = torch.tensor(slots, device=self.device)
        pos = torch.tensor(positions, device=self.device)
        frame_index = torch.tensor(frame_indices, device=self.device)
        kv_len = self._kv_len(max(positions) + 1)
        max_topk = topk_bound(self.topk_host[s] for s in slots)
        codes, pcm = self._frame_fn(slot_ids, pos, frame_index, kv_len, max_topk)
        codes_host = codes[:batch].cpu().numpy()  # the step's one host sync
        pcm_host = pcm[:batch].float().cpu().numpy()
        return StepOutput(codes=codes_host, pcm=pcm_host, is_eos=~codes_host.any(axis=1))

    def _make_frame(
        self,
        slot_ids: torch.Tensor,
        positions: torch.Tensor,
        frame_index: torch.Tensor,
        kv_len: int,
        max_topk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # 1. codes of the next frame from each slot's last hidden state
        sampling = BatchSampling(
            temperature=self.temperature[slot_ids],
            topk=self.topk[slot_ids],
            greedy=self.greedy[slot_ids],
            seed=self.seed[slot_ids],
            frame_index=frame_index,
            max_topk=max_topk,
        )
        codes = self.model.generate_frame(self.hidden[slot_ids], sampling)  # (B, K)
        # 2. its audio, through each slot's own streaming decoder state
        pcm = self.codec.decode_step(codes[:, :, None], self.decoder_state, rows=slot_ids)  # (B, 1, S)
        # 3. the frame becomes the slot's next row; its hidden state seeds the next frame
        tokens, mask = self.model.frame_rows(codes)  # (B, 1, 33)
        embeds = self.model.embed_rows(tokens, mask)
        hidden = self.model.backbone_forward(embeds, self.cache, slot_ids, positions, kv_len)  # (B, 1, D)
        self.hidden[slot_ids] = hidden[:, 0]
        return codes, pcm[:, 0]

    def _kv_len(self, needed_rows: int) -> int:
        bucket = -(-needed_rows // KV_LEN_BUCKET_ROWS) * KV_LEN_BUCKET_ROWS
        return min(bucket, self.max_rows)

    # ---- references ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_audio(self, audio: np.ndarray) -> torch.Tensor:
        """(S,) float32 24 kHz → (T, K) int64 codes on the CPU."""
        wav = torch.from_numpy(np.array(audio, dtype=np.float32)).to(self.device)  # a writable copy
        codec_dtype = next(self.codec.parameters()).dtype
        codes = self.codec.encode(
            wav[None, None].to(codec_dtype), num_codebooks=self.num_codebooks
        )  # (1, K, T)
        return codes[0].T.cpu()
