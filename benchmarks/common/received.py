"""What a receiving process saw, and the check that it is what was published."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.common.records import id_number


@dataclass
class Delivered:
    """What a receiving process (subscriber or bare consumer) saw; checked after the
    clock stops."""

    expected: int
    records: int = 0
    batches: dict[int, tuple[int, str, str, bool]] = field(default_factory=dict)
    foreign: int = 0
    finished_ns: int = 0
    cpu_seconds: float = 0.0


def check_delivery(seen: Delivered, bounds: list[tuple[int, int]], tag: str) -> list[str]:
    """Every batch arrived once, whole, in its records' order, with both signatures checked."""
    problems = []
    if seen.foreign:
        problems.append(f"{seen.foreign} delivered batches belong to no batch of run {tag}")
    if seen.records != bounds[-1][1]:
        problems.append(f"delivered {seen.records} records, expected {bounds[-1][1]}")
    missing = [i for i in range(len(bounds)) if i not in seen.batches]
    if missing:
        problems.append(f"{len(missing)} batches never delivered, e.g. {missing[:5]}")
    for index, (count, first, last, verified) in sorted(seen.batches.items()):
        if index >= len(bounds):
            problems.append(f"unexpected batch index {index}")
            continue
        start, end = bounds[index]
        if count != end - start or first != id_number(start) or last != id_number(end - 1):
            problems.append(f"batch {index} arrived with other records than were published")
        if not verified:
            problems.append(f"batch {index}: the publisher's signature was not verified")
        if len(problems) > 10:
            break
    return problems
