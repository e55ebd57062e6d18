"""admission/count_table.py: counts per 64-bit key in flat arrays (open addressing,
linear probing, backward-shift deletion), checked against a Counter."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from stella.admission.count_table import CountTable

# Keys crowded onto a few home slots (the low bits) either side of the end of a 1,024-slot
# table make long probe runs that wrap around: the cases backward-shift deletion can get
# wrong. (Seeded random runs: hypothesis's small examples rarely built such runs.)
HOMES = (1020, 1021, 1022, 1023, 0, 1, 2)


@pytest.mark.parametrize("seed", range(60))
def test_it_counts_like_a_counter(seed: int) -> None:
    rng = random.Random(seed)
    pool = [(rng.getrandbits(50) << 10) | rng.choice(HOMES) for _ in range(rng.randint(2, 14))]
    pool.append(0)  # stored as 1
    table, model = CountTable(), Counter[int]()
    for _ in range(300):
        key = rng.choice(pool)
        if rng.random() < 0.6:
            model[key or 1] += 1
            assert table.add(key) == model[key or 1]
        else:
            if model[key or 1]:
                model[key or 1] -= 1
            assert table.remove(key) == model[key or 1]
        assert len(table) == sum(1 for c in model.values() if c)
        for other in pool:  # a deletion must not lose a key further along its probe run
            assert table.get(other) == model[other or 1]


def test_it_grows_and_shrinks_and_keeps_every_count() -> None:
    rng = random.Random(7)
    keys = [rng.getrandbits(64) for _ in range(5000)]
    table = CountTable()
    for key in keys:
        table.add(key)
    table.add(keys[0])
    assert len(table) == 5000 and table.get(keys[0]) == 2 and table.get(keys[1]) == 1
    grown = len(table._keys)
    assert grown >= 5000 * 4 // 3  # at most three quarters full
    for key in keys[1:]:
        assert table.remove(key) == 0
    assert len(table) == 1 and table.get(keys[0]) == 2
    assert len(table._keys) < grown  # gave the memory back
    assert table.remove(keys[0]) == 1 and table.remove(keys[0]) == 0
    assert table.remove(keys[0]) == 0 and len(table) == 0  # nothing held: nothing to remove
