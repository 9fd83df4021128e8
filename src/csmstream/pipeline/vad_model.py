"""The Silero voice-activity model (shipped inside the `silero-vad` package, so it works offline).

It scores one 32 ms window (512 samples at 16 kHz) at a time and carries a recurrent state between windows,
so each audio stream needs its own state: `SileroVadModel` is loaded once and shared, `new_stream()` gives
each stream its own `VadModelStream`. ONNX Runtime is used when installed (small, fast, no torch), else the
TorchScript copy of the same model.
"""

from __future__ import annotations

import abc
import importlib.util
from pathlib import Path
from typing import Any, Literal

import numpy as np

from csmstream.errors import CsmstreamError

VAD_SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 512  # what the model accepts at 16 kHz: 32 ms
WINDOW_MS = WINDOW_SAMPLES * 1000 / VAD_SAMPLE_RATE
CONTEXT_SAMPLES = 64  # the model sees the previous window's last 64 samples in front of each window
STATE_SHAPE = (2, 1, 128)  # (LSTM h/c, batch, hidden)

Backend = Literal["auto", "onnx", "jit"]


class VadModelStream(abc.ABC):
    """The model's view of one audio stream: windows must be fed in order."""

    @abc.abstractmethod
    def probability(self, window: np.ndarray) -> float:
        """(512,) float32 16 kHz samples in [-1, 1] → probability that the window holds speech."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the stream so far (a new, unrelated stream follows)."""


class SileroVadModel:
    """The loaded model; thread-safe to share, `new_stream()` per audio stream."""

    def __init__(self, backend: Backend = "auto") -> None:
        self.backend: Literal["onnx", "jit"] = _pick_backend(backend)
        data_dir = _silero_data_dir()
        if self.backend == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            # One 32 ms window is a few microseconds of work: threads would only add overhead.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(data_dir / "silero_vad.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
            )
        else:
            self._jit_path = data_dir / "silero_vad.jit"

    def new_stream(self) -> VadModelStream:
        if self.backend == "onnx":
            return _OnnxStream(self._session)
        return _JitStream(self._jit_path)


def _pick_backend(backend: Backend) -> Literal["onnx", "jit"]:
    if backend in ("onnx", "jit"):
        return backend
    if backend != "auto":
        raise CsmstreamError(f"unknown VAD backend {backend!r}: use auto, onnx or jit")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "jit"
    return "onnx"


def _silero_data_dir() -> Path:
    # Locate the package without importing it: its __init__ imports torch and sets torch's thread count
    # for the whole process, which would slow the speech model down.
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise CsmstreamError(
            "voice activity detection needs the silero-vad package: pip install silero-vad onnxruntime"
        )
    data_dir = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (data_dir / "silero_vad.onnx").is_file():
        raise CsmstreamError(f"the silero-vad package at {data_dir.parent} has no model files; reinstall it")
    return data_dir


class _OnnxStream(VadModelStream):
    def __init__(self, session: Any) -> None:
        self._session = session
        self._sample_rate = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def probability(self, window: np.ndarray) -> float:
        assert window.shape == (WINDOW_SAMPLES,), (
            f"VAD window must be ({WINDOW_SAMPLES},), got {window.shape}"
        )
        x = np.concatenate([self._context, window.astype(np.float32, copy=False)])[None, :]  # (1, 576)
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sample_rate}
        )
        self._context = x[0, -CONTEXT_SAMPLES:]
        return float(out[0, 0])


class _JitStream(VadModelStream):
    """The TorchScript model keeps its state inside the module, so each stream loads its own copy."""

    def __init__(self, path: Path) -> None:
        import torch

        self._torch = torch
        self._model = torch.jit.load(str(path), map_location="cpu")
        self._model.eval()
        self.reset()

    def reset(self) -> None:
        self._model.reset_states()

    def probability(self, window: np.ndarray) -> float:
        assert window.shape == (WINDOW_SAMPLES,), (
            f"VAD window must be ({WINDOW_SAMPLES},), got {window.shape}"
        )
        with self._torch.inference_mode():
            x = self._torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None, :]
            return float(self._model(x, VAD_SAMPLE_RATE)[0, 0])
