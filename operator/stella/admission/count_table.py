"""A count per 64-bit key, held in two flat arrays instead of Python objects.

Loop detection (release_params.LoopIndex) remembers every Release created for a whole
window: tens of thousands of entries under T10's storm. As dict entries each would be
several small, long-lived Python objects (an int key, a tuple, a float), allocated between
the short-lived objects of every request; they pin CPython's memory pools long after the
short-lived ones are gone, so the operator's RSS grows by more than they hold. Here an
entry is 12 bytes in two arrays that grow (and shrink) as a whole.

Open addressing with linear probing; a key's home slot is its low bits, so keys must be
well mixed (digests are). 0 marks an empty slot: a key of 0 is stored as 1.
"""

from __future__ import annotations

from array import array

_MIN = 1024


class CountTable:
    __slots__ = ("_counts", "_keys", "_mask", "_used")

    def __init__(self) -> None:
        self._alloc(_MIN)

    def _alloc(self, size: int) -> None:
        self._keys = array("Q", bytes(8 * size))
        self._counts = array("I", bytes(4 * size))
        self._mask = size - 1
        self._used = 0

    def __len__(self) -> int:
        return self._used

    def _slot(self, key: int) -> int:
        keys, mask = self._keys, self._mask
        i = key & mask
        while True:
            held = keys[i]
            if held in (key, 0):
                return i
            i = (i + 1) & mask

    def get(self, key: int) -> int:
        key = key or 1
        return self._counts[self._slot(key)]

    def add(self, key: int) -> int:
        """One more for `key`; its count now."""
        key = key or 1
        i = self._slot(key)
        if self._keys[i] == 0:
            self._keys[i] = key
            self._used += 1
            if self._used * 4 > len(self._keys) * 3:
                self._counts[i] = 1
                self._resize(len(self._keys) * 2)
                return 1
        self._counts[i] += 1
        return self._counts[i]

    def remove(self, key: int) -> int:
        """One fewer for `key` (nothing for a key not held); its count now."""
        key = key or 1
        i = self._slot(key)
        if self._keys[i] == 0:
            return 0
        left = self._counts[i] - 1
        if left:
            self._counts[i] = left
            return left
        self._delete(i)
        self._used -= 1
        if len(self._keys) > _MIN and self._used * 8 < len(self._keys):
            self._resize(len(self._keys) // 2)
        return 0

    def _delete(self, i: int) -> None:
        # Backward-shift deletion: move later keys of the same probe run into the hole,
        # so no tombstones are needed and lookups stay exact.
        keys, counts, mask = self._keys, self._counts, self._mask
        j = i
        while True:
            j = (j + 1) & mask
            held = keys[j]
            if held == 0:
                break
            home = held & mask
            # Whether the hole at i lies cyclically between the key's home and its slot j.
            if (i <= j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                keys[i], counts[i] = held, counts[j]
                i = j
        keys[i], counts[i] = 0, 0

    def _resize(self, size: int) -> None:
        old_keys, old_counts = self._keys, self._counts
        self._alloc(size)
        keys, counts, mask = self._keys, self._counts, self._mask
        for key, count in zip(old_keys, old_counts, strict=True):
            if key:
                i = key & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i], counts[i] = key, count
                self._used += 1
