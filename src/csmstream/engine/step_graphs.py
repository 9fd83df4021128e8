"""Static input buffers per step shape, and on CUDA one captured CUDA graph per shape.

A static-shape step (see runner.py) runs over slots [0, P) with a kv span of `kv_len` rows. Its inputs are
copied into buffers allocated once per shape (P, kv_len, top-k bound); on CUDA the frame function is captured
once per shape into a `torch.cuda.CUDAGraph` over those buffers, and each later step is: copy the inputs in,
replay, read the static outputs. The graph reads and writes the runner's state (KV cache, hidden states,
decoder state, sampling settings) in place, at the addresses it had at capture: those buffers are allocated
once and only ever updated in place.

Capturing runs the frame function three times (two warm runs, as CUDA graph capture needs, and the capture)
with every row idle (`valid` False, KV row = the scratch row), so building a graph changes no session's state.
Off CUDA the same buffers are used and the function is called directly, so the code around the graph (static
buffers, inputs copied in, outputs read back) runs on every device; tests also swap `capture` for a stand-in
that replays by calling the function again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# (slot_ids, positions, frame_index, valid, kv_len, max_topk, cache_view, with_adapters) → codes (P, K), pcm (P, S)
FrameFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
ShapeKey = tuple[int, int, int | None, bool]  # (P rows, kv_len, top-k bound, rows read LoRA adapters)
# Turns a function of the static buffers into (replay, its outputs): CUDA graphs on CUDA; tests pass a
# stand-in that simply calls the function again, to run the code around the graph on the CPU.
Capture = Callable[
    [Callable[[], tuple[torch.Tensor, ...]]], tuple[Callable[[], None], tuple[torch.Tensor, ...]]
]


class CudaGraphCapture:
    """Captures a function into a `torch.cuda.CUDAGraph`; all graphs share one memory pool (they never run at
    the same time, and each step reads its outputs before the next replay)."""

    def __init__(self, device: torch.device):
        self.device = device
        self._pool = None

    def __call__(self, fn: Callable[[], tuple[torch.Tensor, ...]]):
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        # warm runs on a side stream (compiles, initialises cuBLAS / cuDNN), as torch.cuda.graph requires
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: a CUDA call of another thread (the server's) does not void this capture
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            outputs = fn()
        return graph.replay, outputs


@dataclass
class _Shape:
    slot_ids: torch.Tensor  # (P,) int64: 0..P-1, constant
    positions: torch.Tensor  # (P,) int64: the cache row each row's new frame takes (scratch row when idle)
    frame_index: torch.Tensor  # (P,) int64
    valid: torch.Tensor  # (P,) bool: the row's slot was scheduled; idle rows commit nothing
    replay: Callable[[], None] | None = None  # the captured graph's replay
    codes: torch.Tensor | None = None  # (P, K) the captured graph's outputs, overwritten by each replay
    pcm: torch.Tensor | None = None  # (P, S)


class StepGraphs:
    def __init__(self, device: torch.device, scratch_row: int, use_cuda_graphs: bool):
        self.device = device
        self.scratch_row = scratch_row
        use_cuda_graphs = use_cuda_graphs and device.type == "cuda"
        self.capture: Capture | None = CudaGraphCapture(device) if use_cuda_graphs else None
        self._shapes: dict[ShapeKey, _Shape] = {}

    @property
    def num_captured(self) -> int:
        return sum(shape.replay is not None for shape in self._shapes.values())

    def run(
        self,
        frame_fn: FrameFn,
        key: ShapeKey,
        positions: list[int],
        frame_indices: list[int],
        valid: list[bool],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of shape `key` (P = len(positions)); returns codes (P, K) and pcm (P, S) on the device.
        With graphs these are the graph's static outputs: read them before the next step of the same shape."""
        shape = self._shapes.get(key) or self._allocate(key)
        if self.capture is not None and shape.replay is None:
            self._capture(frame_fn, key, shape)
        # 1. the inputs into the static buffers (the only work before the replay: a failure here changes nothing)
        shape.positions.copy_(torch.tensor(positions, dtype=torch.int64))
        shape.frame_index.copy_(torch.tensor(frame_indices, dtype=torch.int64))
        shape.valid.copy_(torch.tensor(valid, dtype=torch.bool))
        # 2. replay, or call the function on the same buffers
        if shape.replay is not None:
            shape.replay()
            return shape.codes, shape.pcm
        return self._call(frame_fn, key, shape)

    def _allocate(self, key: ShapeKey) -> _Shape:
        width = key[0]
        shape = _Shape(
            slot_ids=torch.arange(width, device=self.device),
            positions=torch.full((width,), self.scratch_row, dtype=torch.int64, device=self.device),
            frame_index=torch.zeros(width, dtype=torch.int64, device=self.device),
            valid=torch.zeros(width, dtype=torch.bool, device=self.device),
        )
        self._shapes[key] = shape
        return shape

    def _call(self, frame_fn: FrameFn, key: ShapeKey, shape: _Shape) -> tuple[torch.Tensor, torch.Tensor]:
        _, kv_len, max_topk, with_adapters = key
        return frame_fn(
            shape.slot_ids,
            shape.positions,
            shape.frame_index,
            shape.valid,
            kv_len,
            max_topk,
            True,
            with_adapters,
        )

    def _capture(self, frame_fn: FrameFn, key: ShapeKey, shape: _Shape) -> None:
        # every row idle while the graph is built: the warm runs execute, and must not move any session
        shape.positions.fill_(self.scratch_row)
        shape.frame_index.zero_()
        shape.valid.zero_()
        shape.replay, (shape.codes, shape.pcm) = self.capture(lambda: self._call(frame_fn, key, shape))

    def stop_capturing(self) -> None:
        """Forget every graph and buffer; from now on the function runs directly (no graphs)."""
        self._shapes.clear()
        self.capture = None
