"""The report's floors: start-up plus the longer of the disk work done at once and the CPU work over every CPU."""

from __future__ import annotations

import os
import re

from benchmarks import report


def _records(*, both: float, cpu2: float, restore_cpu: float) -> list[dict]:
    recs: list[dict] = []
    for rep in range(3):
        recs += [
            {"case": "workers", "rep": rep, "tool": "ashvault-1t", "threads": 1, "op": "full", "seconds": 6.0,
             "cpu_s": cpu2},
            {"case": "workers", "rep": rep, "tool": "ashvault-2t", "threads": 2, "op": "full", "seconds": 4.0,
             "cpu_s": cpu2},
            {"case": "workers", "rep": rep, "variant": "floor: start-up", "op": "(backup list)", "seconds": 0.5,
             "cpu_s": 0.4},
            {"case": "workers", "rep": rep, "variant": "floor: O_DIRECT read", "op": "", "seconds": 2.0},
            {"case": "workers", "rep": rep, "variant": "floor: O_DIRECT write", "op": "", "seconds": 0.5},
            {"case": "workers", "rep": rep, "variant": "floor: read + write at once", "op": "", "seconds": both},
            {"case": "workers", "rep": rep, "variant": "restore floor: read", "op": "", "seconds": 0.7},
            {"case": "workers", "rep": rep, "variant": "restore floor: O_DIRECT write", "op": "", "seconds": 0.8},
            {"case": "workers", "rep": rep, "variant": "restore floor: read + write at once", "op": "",
             "seconds": 1.2},
            {"case": "compare", "rep": rep, "tool": "cp", "op": "full", "seconds": 2.0},
            {"case": "compare", "rep": rep, "tool": "cp", "op": "restore", "seconds": 1.0},
            {"case": "compare", "rep": rep, "tool": "ashvault", "op": "restore", "seconds": 2.0,
             "cpu_s": restore_cpu},
        ]
    return recs


def _floor(line: str) -> float:
    found = re.search(r"\): (\d+\.\d+) s", line)
    assert found, line
    return float(found.group(1))


def test_disk_bound_floor_is_start_up_plus_the_overlapped_io() -> None:
    full, restore = report.floors(_records(both=2.4, cpu2=1.0, restore_cpu=0.5))[1:3]
    assert _floor(full) == 0.5 + 2.4
    assert "1.45x the copy's full backup" in full
    assert "at most 2.07" in full
    assert _floor(restore) == 0.5 + 1.2
    assert "1.70x the copy's restore" in restore


def test_cpu_bound_floor_spreads_the_cpu_beyond_start_up_over_every_cpu() -> None:
    ncpu = os.cpu_count() or 1
    cpu2 = 0.4 + ncpu * 3.0
    full, restore = report.floors(_records(both=1.0, cpu2=cpu2, restore_cpu=0.4 + ncpu * 2.0))[1:3]
    assert _floor(full) == 0.5 + 3.0
    assert _floor(restore) == 0.5 + 2.0


def test_no_floor_without_the_workers_case() -> None:
    recs = [r for r in _records(both=2.4, cpu2=1.0, restore_cpu=0.5) if r["case"] != "workers"]
    assert report.floors(recs) == []


def test_restore_without_its_start_up_is_compared_to_the_copy() -> None:
    line = report.floors(_records(both=2.4, cpu2=1.0, restore_cpu=0.5))[3]
    assert "start-up alone is 50% of the copy's restore" in line
    assert "the rest of ashvault's restore took 1.50x the copy" in line


def test_one_worker_floor_is_start_up_plus_the_engine_work_on_one_thread() -> None:
    ncpu = os.cpu_count() or 1
    recs = _records(both=1.0, cpu2=0.4 + ncpu * 2.0, restore_cpu=0.5)
    recs += [{"case": "workers", "rep": rep, "variant": "floor: engine CPU work, 1 thread", "op": "", "seconds": 3.5}
             for rep in range(3)]
    lines = report.floors(recs)
    line = next(x for x in lines if x.startswith("With one worker"))
    assert "at least start-up plus that: 4.00 s; it took 1.50x it" in line
    # The 2-worker floor is 0.5 + 2.0 = 2.5 s: a pipeline at both floors shows 4.0 / 2.5.
    assert "ratio of 1.60" in line
    assert f"{max(0.0, ncpu * 2.0 - 3.5):.2f} s are not that work" in line


def test_ceiling_counts_the_kernel_cpu_of_the_io_against_two_cpus() -> None:
    # 1 worker: 0.5 + 3.5 = 4.0 s. 2 workers: 0.5 + max(1.0, 3.5 / 2, (3.5 + 0.5) / 2) = 2.5 s.
    line = report.ceiling(start=0.5, disk=1.0, work1=3.5, scaling=2.0, io_cpu=0.5, ncpu=2)
    assert "4.00 / 2.50 = 1.60, below the 1.7 target" in line
    # A third CPU takes the I/O: 0.5 + max(1.0, 1.75, 4.0 / 3) = 2.25 s.
    assert "With one more CPU for the I/O it would be 1.78." in line
    # Two threads that share a core less well lower it: 3.5 s of work costs 2 * 3.5 / 1.75 = 4.0 CPU s on two.
    assert "= 1.45, below" in report.ceiling(start=0.5, disk=1.0, work1=3.5, scaling=1.75, io_cpu=0.5, ncpu=2)
    assert "at or above the 1.7 target" in report.ceiling(start=0.1, disk=1.0, work1=3.5, scaling=2.0, io_cpu=0.1,
                                                          ncpu=2)


def test_floors_print_the_ceiling_once_the_io_cpu_and_the_scaling_are_measured() -> None:
    recs = _records(both=1.0, cpu2=4.0, restore_cpu=0.5)
    recs += [{"case": "workers", "rep": rep, "variant": "floor: engine CPU work, 1 thread", "op": "", "seconds": 3.5}
             for rep in range(3)]
    assert not any(x.startswith("Ceiling") for x in report.floors(recs))
    for r in recs:
        if r.get("variant") == "floor: read + write at once":
            r["cpu_s"] = 0.5
    recs += [{"case": "cpu-scaling", "rep": rep, "ratio": ratio} for rep, ratio in enumerate((2.3, 1.75, 2.0))]
    line = next(x for x in report.floors(recs) if x.startswith("Ceiling"))
    ncpu = os.cpu_count() or 1
    # A measured speed-up above 2 is noise: it counts as 2, and so does the median here.
    assert "(3.50 s / 2.00, the speed-up two threads reach = 1.75 s)" in line
    two = 0.5 + max(1.0, 1.75, (3.5 + 0.5) / ncpu)
    assert f"= {4.0 / two:.2f}," in line
    slower = 0.5 + max(1.0, 2.0, (4.0 + 0.5) / ncpu)
    assert f"Per repetition: {4.0 / two:.2f}, {4.0 / slower:.2f}, {4.0 / two:.2f}." in line
