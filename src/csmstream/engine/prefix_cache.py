"""The voice prefix cache: the KV state of a voice's reference prompt, computed once, copied into new slots.

Keyed by (voice id, voice revision, dtype): a changed voice has a new revision, so its old entry is never
used again and is evicted as soon as the new one is stored. Bounded (least recently used goes first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PrefixEntry:
    num_rows: int
    keys: torch.Tensor  # (L, H_kv, T, Dh) on the model's device
    values: torch.Tensor  # (L, H_kv, T, Dh)

    @property
    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() * 2


class PrefixCache:
    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], PrefixEntry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, voice_id: str, revision: str) -> PrefixEntry | None:
        entry = self._entries.get((voice_id, revision))
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end((voice_id, revision))
        self.hits += 1
        return entry

    def put(self, voice_id: str, revision: str, entry: PrefixEntry) -> None:
        for key in [k for k in self._entries if k[0] == voice_id and k[1] != revision]:
            del self._entries[key]  # the voice changed: its old prefix is stale
        self._entries[(voice_id, revision)] = entry
        self._entries.move_to_end((voice_id, revision))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, voice_id: str) -> None:
        for key in [k for k in self._entries if k[0] == voice_id]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
