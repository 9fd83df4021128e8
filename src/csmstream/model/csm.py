"""CSM: a Llama backbone over rows of summed embeddings, and a small depth decoder that fills in a frame.

One generated frame = one backbone step (its last hidden state → codebook 0 through `codebook0_head`)
then K - 1 depth-decoder steps: position 0 holds the backbone state, position i the embedding of code
i - 1, and `audio_head[i - 1]` reads position i to choose codebook i. The depth decoder's cache lives
for one frame only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from csmstream.model.csm_config import CsmConfig
from csmstream.model.kv_cache import KVCache
from csmstream.model.llama import Transformer
from csmstream.model.sampling import BatchSampling, sample_codes


class CsmModel(nn.Module):
    def __init__(self, config: CsmConfig) -> None:
        super().__init__()
        self.config = config
        bb, dd = config.backbone, config.depth_decoder
        num_audio_ids = config.num_codebooks * config.audio_vocab_size
        self.text_embeddings = nn.Embedding(config.text_vocab_size, bb.dim)
        # one table for all codebooks: codebook i's id c lives at row i * audio_vocab_size + c
        self.audio_embeddings = nn.Embedding(num_audio_ids, bb.dim)
        self.backbone = Transformer(bb)
        self.codebook0_head = nn.Linear(bb.dim, config.audio_vocab_size, bias=False)
        # the depth decoder embeds codes in the backbone's width, then projects to its own
        if config.tie_codebook_embeddings:
            self.depth_audio_embeddings = self.audio_embeddings  # the same module: one tensor, two names
        else:
            self.depth_audio_embeddings = nn.Embedding(num_audio_ids, bb.dim)
        self.projection = nn.Linear(bb.dim, dd.dim, bias=False)
        self.depth_decoder = Transformer(dd)
        # one (dim → vocab) matrix per codebook 1..K-1
        self.audio_head = nn.Parameter(torch.empty(config.num_codebooks - 1, dd.dim, config.audio_vocab_size))
        nn.init.normal_(self.audio_head, std=0.02)
        self.register_buffer(
            "audio_id_offsets",
            torch.arange(config.num_codebooks, dtype=torch.int64) * config.audio_vocab_size,
            persistent=False,
        )
        # 0..K-1 as 0-d tensors (`codebook_indices[i]`) for `frame_codebook`: one compiled graph for every i
        self.register_buffer(
            "codebook_indices", torch.arange(config.num_codebooks, dtype=torch.int64), persistent=False
        )

    def _apply(self, fn, recurse=True):  # nn.Module's signature
        # integer offsets survive `.to(dtype)` but not `to_empty`: rebuild them on the new device
        module = super()._apply(fn, recurse)
        device = self.audio_id_offsets.device
        indices = torch.arange(self.config.num_codebooks, dtype=torch.int64, device=device)
        self.audio_id_offsets = indices * self.config.audio_vocab_size
        self.codebook_indices = indices
        return module

    # ---- the backbone -------------------------------------------------------------------------------

    def new_kv_cache(
        self,
        num_slots: int,
        max_rows: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """A backbone cache of `num_slots` sessions × `max_rows` rows (zeros), on the model's device/dtype."""
        return self.backbone.new_kv_cache(num_slots, max_rows, device=device, dtype=dtype)

    def embed_rows(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens, mask (B, T, K + 1) → (B, T, D): the sum of the embeddings of the unmasked columns.

        Columns 0..K-1 are audio codebooks, column K the text token. Masked ids are ignored, whatever they hold.
        """
        k = self.config.num_codebooks
        assert tokens.shape[-1] == k + 1 and tokens.shape == mask.shape, (
            f"tokens {tuple(tokens.shape)} and mask {tuple(mask.shape)} must both be (B, T, {k + 1})"
        )
        tokens = torch.where(mask, tokens, 0)  # masked ids may be padding: never look them up
        audio = self.audio_embeddings(tokens[..., :k] + self.audio_id_offsets)  # (B, T, K, D)
        audio = (audio * mask[..., :k, None].to(audio.dtype)).sum(dim=2)  # (B, T, D)
        text = self.text_embeddings(tokens[..., k]) * mask[..., k, None].to(audio.dtype)  # (B, T, D)
        return audio + text

    def backbone_forward(
        self,
        embeds: torch.Tensor,
        cache: KVCache | None,
        slot_ids: torch.Tensor | None,
        start_positions: torch.Tensor,
        kv_len: int | None = None,
        adapter_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """embeds (B, T, D) of rows [start, start + T) of each slot → hidden states (B, T, D).
        `adapter_ids` (B,): each row's LoRA adapter (its index in the attached AdapterBank; None: none).

        Writes the rows' keys/values into `cache` slot `slot_ids[b]` (None: slots 0..B-1, a view, no gather)
        and attends causally over that slot's rows [0, start + t]. `kv_len` >= max(start) + T bounds the
        attention span (a static bucket chosen by the caller); rows at or past it must not be needed.
        With `cache=None` the T rows attend among themselves only (training, tests).
        """
        return self.backbone(
            embeds, start_positions, cache=cache, slot_ids=slot_ids, kv_len=kv_len, adapter_ids=adapter_ids
        )

    # ---- one frame ----------------------------------------------------------------------------------

    def codebook0_logits(self, hidden_last: torch.Tensor) -> torch.Tensor:
        """(B, D) last backbone state → (B, V) logits of codebook 0."""
        return self.codebook0_head(hidden_last)

    def depth_inputs(self, codes: torch.Tensor, codebook_index: int | torch.Tensor) -> torch.Tensor:
        """(B,) codes of codebook `codebook_index` → (B, 1, D_depth) depth-decoder inputs."""
        ids = codes + codebook_index * self.config.audio_vocab_size
        return self.projection(self.depth_audio_embeddings(ids))[:, None]

    def depth_logits(self, depth_hidden: torch.Tensor, codebook_index: int | torch.Tensor) -> torch.Tensor:
        """(B, D_depth) depth state at position `codebook_index` → (B, V) logits of that codebook (>= 1)."""
        if isinstance(codebook_index, int):
            return depth_hidden @ self.audio_head[codebook_index - 1]
        # a tensor index (one compiled graph for every codebook) picks its head by a gather, not a Python int
        head = self.audio_head.index_select(0, (codebook_index - 1).reshape(1))[0]  # (D_depth, V)
        return depth_hidden @ head

    def depth_decoder_logits(self, hidden_last: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced depth decoder (training, tests): backbone state (B, D) + the frame's codes (B, K)
        → (B, K - 1, V) logits of codebooks 1..K-1, each seeing the codes before it."""
        k = self.config.num_codebooks
        assert codes.shape[-1] == k, f"codes must be (B, {k}), got {tuple(codes.shape)}"
        ids = codes[:, :-1] + self.audio_id_offsets[:-1]  # (B, K - 1): codes 0..K-2 at positions 1..K-1
        inputs = torch.cat((hidden_last[:, None], self.depth_audio_embeddings(ids)), dim=1)  # (B, K, D)
        start = torch.zeros(codes.shape[0], dtype=torch.int64, device=codes.device)
        hidden = self.depth_decoder(self.projection(inputs), start)[:, 1:]  # (B, K - 1, D_depth)
        return torch.einsum("bkd,kdv->bkv", hidden, self.audio_head)

    def new_depth_cache(self, batch: int, device: torch.device | None = None) -> KVCache:
        """A fresh per-frame depth-decoder cache: K positions (backbone state + codes 0..K-2)."""
        return self.depth_decoder.new_kv_cache(batch, self.config.num_codebooks, device=device)

    def generate_frame(
        self,
        hidden_last: torch.Tensor,
        sampling: BatchSampling,
        depth_cache: KVCache | None = None,
        stages: tuple[Callable, Callable, Callable] | None = None,
        adapter_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, D) last backbone hidden state of each row → (B, K) int64 codes of the next frame.
        `adapter_ids` (B,): each row's LoRA adapter in the depth decoder (None: none).

        `depth_cache` (optional, from `new_depth_cache(B)`) lets a caller reuse one buffer; it is overwritten.
        `stages` (optional) replaces (`frame_start`, `frame_codebook`, `frame_last_codebook`) with the same
        functions compiled: the middle one serves every codebook 1..K-2 (its index is a tensor), so a compiler
        builds three small graphs per batch size instead of one graph of the whole unrolled frame.
        """
        batch = hidden_last.shape[0]
        assert sampling.batch_size == batch, f"sampling has {sampling.batch_size} rows, hidden has {batch}"
        k = self.config.num_codebooks
        assert k >= 2, "a frame has codebook 0 and at least one depth-decoder codebook"
        cache = self.new_depth_cache(batch, hidden_last.device) if depth_cache is None else depth_cache
        start, middle, last = stages or (self.frame_start, self.frame_codebook, self.frame_last_codebook)
        # 1. codebook 0 from the backbone, the depth decoder primed with positions 0, 1
        code, hidden = start(hidden_last, sampling, cache, adapter_ids)
        codes = [code]
        # 2. codebooks 1..K-2, each fed back at the next position; 3. the last one, with nothing to feed back
        for i in range(1, k - 1):
            code, hidden = middle(hidden, sampling, cache, self.codebook_indices[i], adapter_ids)
            codes.append(code)
        codes.append(last(hidden, sampling, self.codebook_indices[k - 1]))
        return torch.stack(codes, dim=1)

    def frame_start(
        self,
        hidden_last: torch.Tensor,
        sampling: BatchSampling,
        cache: KVCache,
        adapter_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) backbone state → codebook 0 (B,) and the depth decoder's state at position 1 (B, D_depth),
        after [backbone state, embedding of code 0] went in at positions 0, 1."""
        batch = hidden_last.shape[0]
        code = sample_codes(self.codebook0_logits(hidden_last), sampling, 0, self.config.codebook_size)
        first = torch.cat((self.projection(hidden_last)[:, None], self.depth_inputs(code, 0)), dim=1)
        start = torch.zeros(batch, dtype=torch.int64, device=hidden_last.device)
        hidden = self.depth_decoder(first, start, cache=cache, kv_len=cache.max_rows, adapter_ids=adapter_ids)
        hidden = hidden[:, -1]
        # strides like frame_codebook's output (a size-1 batch counts too): one compiled graph takes both
        return code, hidden.clone(memory_format=torch.contiguous_format)

    def frame_codebook(
        self,
        depth_hidden: torch.Tensor,
        sampling: BatchSampling,
        cache: KVCache,
        codebook_index: torch.Tensor,
        adapter_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Depth state at position i (B, D_depth), i a 0-d int64 tensor → codebook i (B,) and the state at
        position i + 1 after code i went in. The static kv_len keeps every codebook the same shape."""
        code = sample_codes(
            self.depth_logits(depth_hidden, codebook_index),
            sampling,
            codebook_index,
            self.config.codebook_size,
        )
        position = (codebook_index + 1).expand(depth_hidden.shape[0])  # (B,)
        hidden = self.depth_decoder(
            self.depth_inputs(code, codebook_index),
            position,
            cache=cache,
            kv_len=cache.max_rows,
            adapter_ids=adapter_ids,
        )[:, -1]
        return code, hidden

    def frame_last_codebook(
        self, depth_hidden: torch.Tensor, sampling: BatchSampling, codebook_index: torch.Tensor
    ) -> torch.Tensor:
        """Depth state at position K - 1 → the frame's last codebook (B,)."""
        logits = self.depth_logits(depth_hidden, codebook_index)
        return sample_codes(logits, sampling, codebook_index, self.config.codebook_size)

    def frame_rows(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) codes → tokens, mask (B, 1, K + 1): the audio row fed back to the backbone next step."""
        batch, k = codes.shape
        assert k == self.config.num_codebooks, f"expected {self.config.num_codebooks} codebooks, got {k}"
        tokens = torch.cat((codes, codes.new_zeros(batch, 1)), dim=1)[:, None]
        mask = torch.ones_like(tokens, dtype=torch.bool)
        mask[..., k] = False  # an audio row carries no text
        return tokens, mask

    def is_end_frame(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K) codes → (B,) bool: the all-EOS (all-zero) frame that ends a request."""
        return (codes == self.config.codebook_eos_id).all(dim=-1)
