"""The runner executes what the scheduler decided. It alone touches device tensors.

Buffers are allocated once for `max_slots`: the KV cache (one row per slot, `max_rows` rows + one scratch
row), the backbone's last hidden state per slot (the input of the slot's next frame), per-slot sampling
settings, and the streaming Mimi decoder state. One `step` makes one 80 ms frame for every scheduled slot in
three batched stages, then commits, and ends with a single host transfer:

  hidden[slots] ─▶ generate_frame (codebook 0 + depth decoder)       (B, K) codes
               ─▶ streaming Mimi decode, staged (not yet written)    (B, S) pcm
               ─▶ backbone on the new frame's row at each slot's own position → new hidden (B, D)
               ─▶ commit: hidden[slots] and the decoder state of the slots, together, last

A step that fails leaves no half-done state: nothing a later step reads changes before the commit. (The
backbone does write the new frame's KV row of each slot before that, but a retry of the frame writes the
same row again with the same values, and no query reads a row before its frame succeeded.)

Static shapes (on CUDA with compile / CUDA graphs; anywhere with `pad_to_buckets`): a step runs over the
slots [0, P), P the smallest batch bucket holding every scheduled slot, with a kv span from a few
geometric buckets (`step_shapes`). Slots of [0, P) not scheduled ride along idle: their `valid` row is False,
so nothing of theirs is committed, and their KV row goes to the scratch row that no query ever reads. The
backbone then reads the cache as a view (no per-layer gather). `warm_up` builds every shape before traffic.

LoRA adapters (with `adapters=True`: the model has an AdapterBank attached, see model/lora.py): each slot
carries its bank index (0: the base model) in a static per-slot buffer; a step in which some scheduled slot
speaks through an adapter runs the variant of its shape that adds each row's own LoRA delta, and a
step of base voices only runs the plain shape, at the base model's cost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from csmstream.codec.mimi import Mimi
from csmstream.codec.stream_state import StagedDecoderState
from csmstream.engine.prefix_cache import PrefixEntry
from csmstream.engine.step_graphs import StepGraphs
from csmstream.model.csm import CsmModel
from csmstream.model.sampling import BatchSampling, SamplingParams, topk_bound

log = logging.getLogger("csmstream.engine")

KV_BUCKET_COUNT = 5  # kv spans max_rows, max_rows / 2, ...: few shapes, never 2x more rows than needed
KV_BUCKET_ALIGN_ROWS = 16  # fused attention kernels want the key length (the float mask's last dim) aligned
# Warm-up times steps at this fraction of the window: the longest span would make the first cost curve too
# pessimistic (on a CPU the step's cost grows with the span) and admission too shy until real steps correct it.
TYPICAL_KV_FRACTION = 0.25
WARM_UP_TIMED_STEPS = 5  # timed steps per batch bucket (after the untimed one that built the shape); the
# fastest counts: start-up work elsewhere in the process (imports, first requests) only ever slows a step down
# Where `fail_next_step_at` makes the next step raise (tests): after the codes, after the (staged) Mimi decode,
# inside the backbone (before its last layer, the earlier layers' KV rows already written), before the commit.
FAULT_STAGES = ("after_codes", "after_audio", "in_backbone", "before_commit")


class InjectedFault(RuntimeError):
    """The failure `fail_next_step_at` asked for."""


@dataclass(frozen=True)
class StepOutput:
    codes: np.ndarray  # (B, K) int64 codes of this frame
    pcm: np.ndarray  # (B, S) float32 audio of this frame (S = 1920 at 24 kHz)
    is_eos: np.ndarray  # (B,) bool: the frame was all zeros, the end of the utterance (its pcm is not audio)


def batch_buckets(max_slots: int) -> tuple[int, ...]:
    """Batch sizes a static step is specialised for: powers of two, then max_slots."""
    sizes, b = [], 1
    while b < max_slots:
        sizes.append(b)
        b *= 2
    return (*sizes, max_slots)


def kv_buckets(max_rows: int, count: int = KV_BUCKET_COUNT) -> tuple[int, ...]:
    """Attention spans a step is specialised for: max_rows, about half of it, ... (`count` at most), each
    rounded up to a multiple of KV_BUCKET_ALIGN_ROWS. 2048 → (128, 256, 512, 1024, 2048)."""
    sizes = set()
    for halvings in range(count):
        rows = -(-max_rows // 2**halvings)  # ceil
        sizes.add(min(max_rows, -(-rows // KV_BUCKET_ALIGN_ROWS) * KV_BUCKET_ALIGN_ROWS))
    return tuple(sorted(sizes))


def compile_enabled(requested: bool, device: torch.device, any_device: bool = False) -> bool:
    """torch.compile only on CUDA (any device with `any_device`, for tests), and only when neither the
    settings nor CSMSTREAM_NO_COMPILE=1 turn it off."""
    on_device = device.type == "cuda" or any_device
    return requested and on_device and os.environ.get("CSMSTREAM_NO_COMPILE", "0") != "1"


class _CountingBackend:
    """A torch.compile backend that counts the graphs it is given (one per compiled shape, recompiles
    included) and hands them to the named backend."""

    def __init__(self, name: str):
        self.name = name
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return torch._dynamo.lookup_backend(self.name)(graph_module, example_inputs)


@dataclass(frozen=True)
class _Stages:
    """The functions one frame runs through: the model's own, or the same compiled (a graph per shape each)."""

    depth: tuple[Callable, Callable, Callable] | None  # generate_frame's stages; None: the model's own
    audio: Callable
    backbone: Callable


def _graph_breaks() -> int:
    """Graph breaks dynamo has counted in this process (every compiled function, not only the runner's)."""
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


class ModelRunner:
    def __init__(
        self,
        model: CsmModel,
        codec: Mimi,
        max_slots: int,
        max_rows: int,
        compile: bool = False,
        pad_to_buckets: bool | None = None,
        *,
        compile_backend: str = "inductor",
        compile_any_device: bool = False,
        cuda_graphs: bool | None = None,
        adapters: bool = False,
        kv_bucket_count: int = KV_BUCKET_COUNT,
    ):
        """`compile`: torch.compile the step's stages with `compile_backend`, on CUDA only unless
        `compile_any_device` (tests: "aot_eager" on the CPU); CSMSTREAM_NO_COMPILE=1 turns it off.
        `cuda_graphs`: capture one CUDA graph per step shape (CUDA only; None: when compiling on CUDA).
        `pad_to_buckets`: run steps in the static shapes (None: when compiling or capturing graphs).
        `kv_bucket_count`: attention spans per batch bucket (`kv_buckets`): each is a step shape to build."""
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.model = model
        self.codec = codec
        self.max_slots = max_slots
        self.max_rows = max_rows
        self.num_codebooks = model.config.num_codebooks
        self.compiled = compile_enabled(compile, self.device, compile_any_device)
        if cuda_graphs is None:
            cuda_graphs = compile_enabled(compile, self.device)
        self.pad_to_buckets = self.compiled or cuda_graphs if pad_to_buckets is None else pad_to_buckets
        self.buckets = batch_buckets(max_slots)
        self.kv_buckets = kv_buckets(max_rows, kv_bucket_count)
        self.scratch_row = max_rows  # KV row of a static step's idle rows: past every kv bucket, never read
        # 1. buffers, allocated once and only ever updated in place (CUDA graphs hold their addresses)
        self.cache = model.new_kv_cache(max_slots, max_rows + 1, device=self.device, dtype=self.dtype)
        hidden_dim = model.config.backbone.dim
        self.hidden = torch.zeros(max_slots, hidden_dim, device=self.device, dtype=self.dtype)  # (N, D)
        self.temperature = torch.ones(max_slots, device=self.device)
        self.topk = torch.ones(max_slots, dtype=torch.int64, device=self.device)
        self.greedy = torch.zeros(max_slots, dtype=torch.bool, device=self.device)
        self.seed = torch.zeros(max_slots, dtype=torch.int64, device=self.device)
        self.topk_host = [1] * max_slots  # the same top-k values on the host: the sampler's bound, no sync
        self.decoder_state = codec.new_decoder_state(max_slots, device=self.device)
        self.adapters = adapters  # the model has an AdapterBank: slots may speak through LoRA adapters
        self.slot_adapter = torch.zeros(
            max_slots, dtype=torch.int64, device=self.device
        )  # bank index per slot
        self.slot_adapter_host = [0] * max_slots
        # 2. the frame's stages, compiled or not, and the function a step calls (tests may wrap `_frame_fn`)
        self._eager_stages = _Stages(depth=None, audio=self._frame_audio, backbone=self._frame_backbone)
        self._stages = self._eager_stages
        self.compile_backend = compile_backend
        self._backend = _CountingBackend(compile_backend)
        self.compile_error: str | None = None
        if self.compiled:
            self._stages = self._compile_stages()
        self._frame_fn = self._make_frame
        self._graphs = StepGraphs(self.device, self.scratch_row, use_cuda_graphs=cuda_graphs)
        # 3. what compile_stats reports
        self._graph_breaks_at_start = _graph_breaks()
        self._graphs_after_warm_up: int | None = None
        self._compiled_shapes: set[tuple[int, int]] = set()
        self.fail_next_step_at: str | None = None  # one of FAULT_STAGES: the next step raises there (tests)

    def _compile_stages(self) -> _Stages:
        # One graph per (stage, shape): the depth decoder's three stages and Mimi per batch bucket, the backbone
        # per (batch bucket, kv bucket). Dynamo's default limit of 8 graphs per function would silently run the
        # rest eagerly: lift it to what this runner needs.
        needed = len(self.buckets) * len(self.kv_buckets) + 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, needed)

        def compiled(fn: Callable) -> Callable:
            return torch.compile(fn, backend=self._backend, fullgraph=True, dynamic=False)

        model = self.model
        return _Stages(
            depth=tuple(
                compiled(f) for f in (model.frame_start, model.frame_codebook, model.frame_last_codebook)
            ),
            audio=compiled(self._frame_audio),
            backbone=compiled(self._frame_backbone),
        )

    @property
    def kv_bytes_per_slot(self) -> int:
        return (
            (self.cache.keys.numel() + self.cache.values.numel())
            * self.cache.keys.element_size()
            // self.max_slots
        )

    @property
    def cuda_graphs(self) -> bool:
        return self._graphs.capture is not None

    # ---- a slot's life -------------------------------------------------------------------------------
    @torch.inference_mode()
    def start_slot(self, slot: int, sampling: SamplingParams, adapter_index: int = 0) -> None:
        """A new session takes `slot`: its sampling settings, its LoRA adapter's bank index (0: none), a fresh
        decoder state. (Stale KV rows past the session's length are masked out by attention, so the cache row
        needs no clearing.)"""
        assert sampling.seed is not None, "resolve the seed (SamplingParams.with_seed) before a slot starts"
        assert adapter_index == 0 or self.adapters, "this runner's model has no adapter bank"
        self.temperature[slot] = sampling.temperature
        self.topk[slot] = sampling.topk
        self.topk_host[slot] = sampling.topk
        self.greedy[slot] = sampling.greedy
        self.seed[slot] = sampling.seed
        self.slot_adapter[slot] = adapter_index
        self.slot_adapter_host[slot] = adapter_index
        mask = torch.zeros(self.max_slots, dtype=torch.bool, device=self.device)
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
        adapter_ids = self.slot_adapter[slot_ids] if self.slot_adapter_host[slot] else None
        hidden = self.model.backbone_forward(
            embeds, self.cache, slot_ids, starts, kv_len, adapter_ids=adapter_ids
        )  # (1, T, D)
        if is_last:
            self.hidden[slot] = hidden[0, -1]

    # ---- the batched step ----------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, slots: list[int], positions: list[int], frame_indices: list[int]) -> StepOutput:
        """One frame for each slot in `slots`; `positions[i]` is the row its new frame takes in the cache.
        On failure nothing a later step reads has changed: the same call may simply be made again."""
        assert slots and len(slots) == len(positions) == len(frame_indices), "one position per slot"
        assert max(positions) < self.max_rows, f"position {max(positions)} is past the {self.max_rows} rows"
        assert 0 <= min(slots) and max(slots) < self.max_slots, f"slots must be in [0, {self.max_slots})"
        kv_len = self._kv_len(max(positions) + 1)
        max_topk = self._topk_bound(slots)
        with_adapters = any(self.slot_adapter_host[s] for s in slots)
        armed = self.fail_next_step_at is not None
        assert not armed or self.fail_next_step_at in FAULT_STAGES, f"fault stages: {FAULT_STAGES}"
        if self.pad_to_buckets:
            # the rows are slots [0, P); a row's index is its slot
            width = next(b for b in self.buckets if b > max(slots))
            row_positions, row_frames, valid = [self.scratch_row] * width, [0] * width, [False] * width
            for slot, position, frame_index in zip(slots, positions, frame_indices, strict=True):
                row_positions[slot], row_frames[slot], valid[slot] = position, frame_index, True
            if armed:  # a fault to inject: the plain stages, where every stage is reachable
                codes, pcm = self._make_frame(
                    *self._device_rows(list(range(width)), row_positions, row_frames, valid),
                    kv_len, max_topk, True, with_adapters, eager=True,
                )  # fmt: skip
            else:
                self._note_shape(width, kv_len, with_adapters)
                key = (width, kv_len, max_topk, with_adapters)
                codes, pcm = self._graphs.run(self._frame_fn, key, row_positions, row_frames, valid)
            rows = slots
        else:
            inputs = (*self._device_rows(slots, positions, frame_indices), None)  # valid=None: no idle rows
            if armed:
                codes, pcm = self._make_frame(*inputs, kv_len, max_topk, False, with_adapters, eager=True)
            else:
                self._note_shape(len(slots), kv_len, with_adapters)
                codes, pcm = self._frame_fn(*inputs, kv_len, max_topk, False, with_adapters)
            rows = list(range(len(slots)))
        codes_host = codes.cpu().numpy()[rows]  # the step's one host sync
        pcm_host = pcm.float().cpu().numpy()[rows]
        return StepOutput(codes=codes_host, pcm=pcm_host, is_eos=~codes_host.any(axis=1))

    def _device_rows(
        self,
        slots: list[int],
        positions: list[int],
        frame_indices: list[int],
        valid: list[bool] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        rows = (
            torch.tensor(slots, device=self.device),
            torch.tensor(positions, device=self.device),
            torch.tensor(frame_indices, device=self.device),
        )
        return rows if valid is None else (*rows, torch.tensor(valid, dtype=torch.bool, device=self.device))

    def _make_frame(
        self,
        slot_ids: torch.Tensor,  # (P,) distinct slots
        positions: torch.Tensor,  # (P,) the cache row of each row's new frame (the scratch row when idle)
        frame_index: torch.Tensor,  # (P,)
        valid: torch.Tensor
        | None,  # (P,) bool: False for idle rows, which commit nothing; None: no idle rows
        kv_len: int,
        max_topk: int | None,
        cache_view: bool,  # slot_ids is 0..P-1: the backbone reads the cache as a view
        with_adapters: bool = False,  # rows read their slot's LoRA adapter (some row has one)
        eager: bool = False,  # the plain stages even when compiled (fault injection)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self._eager_stages if eager else self._stages
        adapter_ids = self.slot_adapter.index_select(0, slot_ids) if with_adapters else None  # (P,)
        # 1. codes of the next frame from each slot's last hidden state
        codes = self._frame_codes(slot_ids, frame_index, max_topk, stages.depth, adapter_ids)  # (P, K)
        self._fault_point("after_codes")
        # 2. its audio through each slot's streaming decoder, staged: the state is not written yet
        pcm, decoder_rows, decoder_positions = stages.audio(codes, slot_ids)  # (P, S)
        self._fault_point("after_audio")
        # 3. the frame becomes the slot's next row; its hidden state seeds the next frame
        hook = None
        if self.fail_next_step_at == "in_backbone":
            hook = self.model.backbone.layers[-1].register_forward_pre_hook(self._fail)
        try:
            hidden = stages.backbone(
                codes, None if cache_view else slot_ids, positions, kv_len, adapter_ids
            )  # (P, D)
        finally:
            if hook is not None:
                hook.remove()
        self._fault_point("before_commit")
        # 4. commit, only now: the decoder state and the hidden state of the scheduled rows
        self.decoder_state.scatter(slot_ids, decoder_rows, decoder_positions, valid=valid)
        if valid is not None:
            hidden = torch.where(valid[:, None], hidden, self.hidden.index_select(0, slot_ids))
        self.hidden.index_copy_(0, slot_ids, hidden)
        return codes, pcm

    # The stages (each compiled when compiling, the depth decoder's in three: see CsmModel.generate_frame)
    def _frame_codes(
        self,
        slot_ids: torch.Tensor,
        frame_index: torch.Tensor,
        max_topk: int | None,
        depth_stages: tuple[Callable, Callable, Callable] | None,
        adapter_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        sampling = BatchSampling(
            temperature=self.temperature[slot_ids],
            topk=self.topk[slot_ids],
            greedy=self.greedy[slot_ids],
            seed=self.seed[slot_ids],
            frame_index=frame_index,
            max_topk=max_topk,
        )
        return self.model.generate_frame(
            self.hidden[slot_ids], sampling, stages=depth_stages, adapter_ids=adapter_ids
        )  # (P, K)

    def _frame_audio(
        self, codes: torch.Tensor, slot_ids: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        staged = StagedDecoderState(self.decoder_state)
        pcm = self.codec.decode_step(codes[:, :, None], staged, rows=slot_ids)  # (P, 1, S)
        return pcm[:, 0], staged.tensors, staged.positions

    def _frame_backbone(
        self,
        codes: torch.Tensor,
        cache_slots: torch.Tensor | None,
        positions: torch.Tensor,
        kv_len: int,
        adapter_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        tokens, mask = self.model.frame_rows(codes)  # (P, 1, 33)
        embeds = self.model.embed_rows(tokens, mask)
        hidden = self.model.backbone_forward(embeds, self.cache, cache_slots, positions, kv_len, adapter_ids)
        return hidden[:, 0]

    def _kv_len(self, needed_rows: int) -> int:
        return next(b for b in self.kv_buckets if b >= needed_rows)

    def _topk_bound(self, slots: list[int]) -> int | None:
        """The sampler's candidate bound: per step when eager (sampling looks at fewer candidates); none when
        compiled or graphed, so top-k makes no shape of its own (the whole codebook: cheap on a GPU)."""
        if self.compiled or self.cuda_graphs:
            return None
        return topk_bound(self.topk_host[s] for s in slots)

    def _note_shape(self, width: int, kv_len: int, with_adapters: bool = False) -> None:
        if self.compiled and self._stages is not self._eager_stages:
            self._compiled_shapes.add((width, kv_len, with_adapters))

    # ---- faults (tests) ------------------------------------------------------------------------------
    def _fault_point(self, stage: str) -> None:
        if self.fail_next_step_at == stage:
            self._fail()

    def _fail(self, *_hook_args) -> None:
        stage, self.fail_next_step_at = self.fail_next_step_at, None
        raise InjectedFault(f"injected fault at {stage}")

    # ---- warm-up and compile figures -----------------------------------------------------------------
    def step_shapes(self) -> list[tuple[int, int, bool]]:
        """(batch rows, kv_len, with adapters) of every step shape: all of them when shapes are static (the
        adapter variant of each too when the model has an adapter bank), else one per batch."""
        if self.pad_to_buckets:
            variants = (False, True) if self.adapters else (False,)
            return [(w, kv, lora) for lora in variants for w in self.buckets for kv in self.kv_buckets]
        return [(width, self.kv_buckets[-1], False) for width in self.buckets]

    @torch.inference_mode()
    def warm_up(self, progress: Callable[[str], None] | None = None) -> list[tuple[int, float]]:
        """Build every step shape once (compile it, capture its CUDA graph), then time steady steps.

        Returns (batch size, step ms) per batch bucket, measured at a typical kv span (`TYPICAL_KV_FRACTION`
        of the window: a voice prompt and some seconds of speech), the scheduler's first cost curve; real
        steps correct it from there. Every row of these steps is idle, so no slot's state changes (call it
        before traffic)."""
        say = progress or (lambda line: None)
        shapes = self.step_shapes()
        # 1. one step of each shape: on CUDA this compiles and captures; a failure to compile falls back
        for i, (width, kv_len, with_adapters) in enumerate(shapes, start=1):
            t0 = time.perf_counter()
            try:
                self._idle_step(width, kv_len, with_adapters)
            except Exception as exc:
                if self._stages is self._eager_stages and not self.cuda_graphs:
                    raise  # nothing to fall back from: the step itself fails
                self._fall_back_to_eager(exc)
                say(f"compile failed ({self.compile_error}); running eagerly")
                self._idle_step(width, kv_len, with_adapters)
            self._sync()
            ms = (time.perf_counter() - t0) * 1000.0
            variant = ", LoRA adapters" if with_adapters else ""
            say(f"step shape {i}/{len(shapes)}: batch {width}, kv span {kv_len} rows{variant} ({ms:.0f} ms)")
        # 2. steady-state step time per batch bucket
        measured = []
        typical_kv_len = self._kv_len(max(1, int(self.max_rows * TYPICAL_KV_FRACTION)))
        for width in self.buckets:
            times = []
            for _ in range(WARM_UP_TIMED_STEPS):
                t0 = time.perf_counter()
                self._idle_step(width, typical_kv_len)
                self._sync()
                times.append((time.perf_counter() - t0) * 1000.0)
            measured.append((width, min(times)))
            say(f"batch {width}: {min(times):.1f} ms per step")
        if self._graphs_after_warm_up is None:  # a later warm-up that compiles is a recompile too
            self._graphs_after_warm_up = self._backend.graphs
        return measured

    def _idle_step(self, width: int, kv_len: int, with_adapters: bool = False) -> None:
        """A step over slots [0, width) with every row idle: the full work of a real step, no state changed."""
        max_topk = None if self.compiled or self.cuda_graphs else topk_bound([SamplingParams().topk])
        positions, frame_indices, valid = [self.scratch_row] * width, [0] * width, [False] * width
        if self.pad_to_buckets:
            self._note_shape(width, kv_len, with_adapters)
            key = (width, kv_len, max_topk, with_adapters)
            codes, _ = self._graphs.run(self._frame_fn, key, positions, frame_indices, valid)
        else:
            inputs = self._device_rows(list(range(width)), positions, frame_indices, valid)
            codes, _ = self._frame_fn(*inputs, kv_len, max_topk, False, with_adapters)
        codes.cpu()  # like a real step: includes the host transfer

    def _fall_back_to_eager(self, exc: Exception) -> None:
        log.exception("compiling the step failed; the runner goes on without compile and CUDA graphs")
        self.compile_error = f"{type(exc).__name__}: {exc}"[:500]
        self._stages = self._eager_stages
        self._graphs.stop_capturing()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def compile_stats(self) -> dict:
        """Figures for metrics: how many shapes were built, and whether anything compiled after warm-up."""
        warmed = self._graphs_after_warm_up is not None
        return {
            "compile_enabled": self.compiled and self._stages is not self._eager_stages,
            "compile_backend": self.compile_backend if self.compiled else None,
            "compile_error": self.compile_error,
            "cuda_graphs": self.cuda_graphs,
            "static_shapes": self.pad_to_buckets,
            "step_shapes": len(self.step_shapes()),
            "compiled_shapes": len(self._compiled_shapes),
            "captured_graphs": self._graphs.num_captured,
            "compiled_graphs": self._backend.graphs,
            "recompiles_after_warmup": self._backend.graphs - self._graphs_after_warm_up if warmed else 0,
            "graph_breaks": _graph_breaks() - self._graph_breaks_at_start,
            "warmed_up": warmed,
        }

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
