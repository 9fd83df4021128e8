"""Which fine-tuned voice's LoRA adapter sits at which index of the device's adapter bank (model/lora.py).

The bank has `capacity` indices (1..N; 0 is the base model). An adapter is loaded on first use into a free
index, or into the index of the least recently used adapter that no session speaks through right now, and
stays there for later requests of that voice. Sessions hold a reference from `acquire` to `release`: an
adapter in use is never replaced. Adapters are keyed by the voice's (id, revision), and the revision covers
the adapter's files, so a voice whose adapter changed while serving loads the new one under a new key and
the old one ages out; `forget` frees a deleted voice's index at once when nobody uses it.

Pure bookkeeping: loading and writing the tables is done by the two functions the engine gives it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from csmstream.errors import Busy
from csmstream.model.lora import LoraWeights

AdapterKey = tuple[str, str]  # (voice id, voice revision)


@dataclass
class _Entry:
    index: int
    users: int = 0


class AdapterPool:
    def __init__(
        self, capacity: int, write: Callable[[int, LoraWeights], None], clear: Callable[[int], None]
    ):
        """`write(index, weights)` puts an adapter into the bank, `clear(index)` empties an index."""
        assert capacity >= 1, "a pool holds at least one adapter"
        self.capacity = capacity
        self._write = write
        self._clear = clear
        self._entries: OrderedDict[AdapterKey, _Entry] = OrderedDict()  # least recently used first
        self._free = list(range(capacity, 0, -1))  # indices never used or freed; pop() gives the lowest
        self.loads = 0  # adapters read and written into the bank (a figure for tests and metrics)

    def acquire(self, key: AdapterKey, load: Callable[[], LoraWeights]) -> int:
        """The bank index of `key`'s adapter, loaded now (`load()`) when it is not in the bank. The caller
        must `release` it. Busy when every index holds an adapter some session is speaking through."""
        entry = self._entries.get(key)
        if entry is None:
            index = self._take_index(key)
            try:
                self._write(index, load())
            except BaseException:
                self._clear(index)
                self._free.append(index)
                raise
            self.loads += 1
            entry = self._entries[key] = _Entry(index)
        self._entries.move_to_end(key)
        entry.users += 1
        return entry.index

    def release(self, key: AdapterKey) -> None:
        entry = self._entries.get(key)
        assert entry is not None and entry.users > 0, f"release of {key} without acquire"
        entry.users -= 1

    def forget(self, voice_id: str) -> int:
        """Free the indices of a voice's adapters that nobody uses (the voice was deleted); returns how many."""
        freed = 0
        for key in [k for k, e in self._entries.items() if k[0] == voice_id and e.users == 0]:
            self._drop(key)
            freed += 1
        return freed

    def _take_index(self, key: AdapterKey) -> int:
        if self._free:
            return self._free.pop()
        for old_key, entry in self._entries.items():  # least recently used first
            if entry.users == 0:
                self._drop(old_key)
                return self._free.pop()
        raise Busy(
            f"all {self.capacity} adapter slots hold fine-tuned voices that are speaking now, so voice "
            f"{key[0]!r} cannot be loaded; retry shortly, or start the server with a larger --max-adapters"
        )

    def _drop(self, key: AdapterKey) -> None:
        entry = self._entries.pop(key)
        self._clear(entry.index)
        self._free.append(entry.index)
        self._free.sort(reverse=True)

    # ---- figures -------------------------------------------------------------------------------------
    @property
    def loaded(self) -> int:
        return len(self._entries)

    @property
    def in_use(self) -> int:
        """Adapters some session speaks through now."""
        return sum(entry.users > 0 for entry in self._entries.values())

    @property
    def users(self) -> int:
        """Sessions holding an adapter now (all of them released: 0)."""
        return sum(entry.users for entry in self._entries.values())
