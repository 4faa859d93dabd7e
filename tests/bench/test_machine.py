"""The machine probe of the benchmarks tells a core that ran slower from a process that waited."""

from __future__ import annotations

from bench.machine import judge

TYPICAL = 0.0002


def units(count: int, start: float = 100.0, cpu: float = TYPICAL, wall: float | None = None):
    return [(start + i * 0.004, wall or cpu, cpu) for i in range(count)]


def test_a_process_that_waited_for_a_core_is_not_a_slowed_core():
    samples = units(500)
    samples[100] = (samples[100][0], 0.030, TYPICAL)  # 30 ms waiting, no more CPU

    assert judge(samples).episodes == 0


def test_slow_units_close_together_are_one_episode_and_its_span_is_kept():
    samples = units(1000)
    for i in range(200, 220):  # 80 ms of units that took ten times their CPU
        samples[i] = (samples[i][0], 10 * TYPICAL, 10 * TYPICAL)
    for i in range(700, 705):
        samples[i] = (samples[i][0], 10 * TYPICAL, 10 * TYPICAL)

    verdict = judge(samples)
    assert verdict.episodes == 2
    assert 0.075 <= verdict.longest <= 0.08
    assert abs(verdict.typical_gap - 2.0) < 0.01
    begin, end = verdict.spans[0]
    assert verdict.overlaps(begin + 0.01, begin + 0.02)
    assert not verdict.overlaps(end + 0.1, end + 0.2)
    assert 0.02 < verdict.slowed_share < 0.03
