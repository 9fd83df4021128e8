"""How clean a clip of speech is, measured on the waveform: clipping, level, and a signal-to-noise estimate.

The SNR is estimated from the clip itself: the loud 50 ms blocks (90th percentile) are the speech, the quiet
ones (10th percentile) the noise floor between words. A VAD-cut clip with a little padding has both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.loudness import active_level_dbfs, block_rms, to_dbfs

CLIP_LEVEL = 0.99  # a sample this close to full scale is (probably) clipped
MAX_CLIPPED_FRACTION = 0.001  # more than 0.1 % of samples at full scale: clipped audio
SILENT_DBFS = -55.0  # active level below this: silence
QUIET_DBFS = -40.0  # active level below this: too quiet to be a good reference
MIN_SNR_DB = 12.0  # speech less than this above the noise floor: too noisy for a reference


@dataclass(frozen=True)
class ClipQuality:
    seconds: float
    peak: float
    clipped_fraction: float  # samples at full scale / all samples
    level_dbfs: float  # gated (active) RMS level
    snr_db: float  # loud blocks over quiet blocks

    @property
    def clipped(self) -> bool:
        return self.clipped_fraction > MAX_CLIPPED_FRACTION

    @property
    def silent(self) -> bool:
        return self.level_dbfs < SILENT_DBFS

    @property
    def too_quiet(self) -> bool:
        return self.level_dbfs < QUIET_DBFS

    @property
    def noisy(self) -> bool:
        return self.snr_db < MIN_SNR_DB


def measure_clip(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> ClipQuality:
    """(S,) float mono in [-1, 1] → its `ClipQuality`."""
    x = np.asarray(samples, dtype=np.float32)
    if x.size == 0:
        return ClipQuality(0.0, 0.0, 0.0, to_dbfs(0.0), 0.0)
    magnitude = np.abs(x)
    peak = float(magnitude.max())
    rms = block_rms(x, sample_rate)
    if rms.size >= 2:
        snr_db = to_dbfs(float(np.percentile(rms, 90))) - to_dbfs(float(np.percentile(rms, 10)))
    else:
        snr_db = 0.0
    return ClipQuality(
        seconds=len(x) / sample_rate,
        peak=peak,
        clipped_fraction=float(np.mean(magnitude >= CLIP_LEVEL)),
        level_dbfs=active_level_dbfs(x, sample_rate),
        snr_db=float(snr_db),
    )
