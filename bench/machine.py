"""Is the machine's CPU running at its speed? A probe for the benchmarks' latency figures.

    .venv/bin/python -m bench.machine [--seconds 20] [--load 0]

A small fixed piece of work (pure Python, ~0.2 ms) is done every few ms in a process of its
own, timing each one by the wall clock and by the CPU time the process was given. When the
process merely waits for a core (our own load), the wall time grows and the CPU time does not.
When the CPU time itself grows several-fold, the core ran slower: the host throttled or shared
it. On the 2-core VMs this was built on, that happens in episodes of 50-100 ms about every
1.6 s, whenever both cores are busy (and at times with one): every request in flight then takes
that much longer, whatever the server does, which is what a p99 measures.

``--load N`` keeps N extra processes busy meanwhile (``--load 2``: both cores, as under a
benchmark). The benchmarks start a ``Probe`` around the phase whose latency they report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

UNIT_LOOPS = 4_000  # ~0.2 ms of work on the machines here
PAUSE = 0.004  # between units: ~5 % of one core
SLOW = 3.0  # a unit whose CPU time is this many times the median ran on a slowed core
MERGE = 0.05  # slow units less than this apart are one episode


def unit() -> int:
    total = 0
    for i in range(UNIT_LOOPS):
        total += i
    return total


def probe(seconds: float) -> list[tuple[float, float, float]]:
    """(start, wall seconds, CPU seconds) of each unit; the start on ``time.monotonic()``'s
    clock, which other processes of the machine share (the client's event loop uses it)."""
    samples = []
    end = time.monotonic() + seconds
    while (began := time.monotonic()) < end:
        cpu = time.thread_time()
        unit()
        samples.append((began, time.monotonic() - began, time.thread_time() - cpu))
        time.sleep(PAUSE)
    return samples


@dataclass
class Verdict:
    seconds: float
    units: int
    episodes: int
    slowed_share: float  # of the time, in episodes
    longest: float  # seconds
    typical_gap: float  # seconds between episodes (median), 0 with fewer than two
    spans: list[tuple[float, float]] = field(default_factory=list)  # on time.monotonic()

    def overlaps(self, begin: float, end: float) -> bool:
        return any(a < end and begin < b for a, b in self.spans)

    def line(self) -> str:
        if not self.episodes:
            return (
                f"machine: the CPU ran at its speed ({self.units:,} probes in {self.seconds:.0f} s)"
            )
        gap = f", about every {self.typical_gap:.1f} s" if self.typical_gap else ""
        return (
            f"machine: the CPU ran {SLOW:g}x+ slower in {self.episodes} episodes{gap}, "
            f"up to {self.longest * 1000:.0f} ms, {self.slowed_share:.1%} of the time "
            f"(host throttling; requests in flight then take that much longer)"
        )


def judge(samples: list[tuple[float, float, float]]) -> Verdict:
    if not samples:
        return Verdict(0.0, 0, 0, 0.0, 0.0, 0.0)
    typical = statistics.median(cpu for _, _, cpu in samples)
    episodes: list[list[float]] = []  # [first start, last end]
    for began, wall, cpu in samples:
        if cpu <= SLOW * typical:
            continue
        if episodes and began - episodes[-1][1] <= MERGE:
            episodes[-1][1] = began + wall
        else:
            episodes.append([began, began + wall])
    seconds = samples[-1][0] + samples[-1][1] - samples[0][0]
    lengths = [end - begin for begin, end in episodes]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(episodes)]
    return Verdict(
        seconds=seconds,
        units=len(samples),
        episodes=len(episodes),
        slowed_share=sum(lengths) / seconds if seconds else 0.0,
        longest=max(lengths, default=0.0),
        typical_gap=statistics.median(gaps) if gaps else 0.0,
        spans=[(begin, end) for begin, end in episodes],
    )


class Probe:
    """The probe in a process of its own for ``seconds``; ``result()`` waits for its verdict."""

    def __init__(self, seconds: float, out: Path) -> None:
        self.out = out
        argv = [sys.executable, "-m", "bench.machine", "--seconds", str(seconds), "--out", str(out)]
        repo = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        self.proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.DEVNULL)

    def result(self) -> Verdict | None:
        try:
            self.proc.wait(timeout=60)
            found = json.loads(self.out.read_text())
            found["spans"] = [tuple(span) for span in found["spans"]]
            return Verdict(**found)
        except (OSError, ValueError, TypeError, subprocess.TimeoutExpired):
            self.proc.kill()
            return None


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        unit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.machine", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load", type=int, default=0, help="extra busy processes meanwhile")
    parser.add_argument("--out", type=Path, help="write the verdict as JSON (for Probe)")
    args = parser.parse_args(argv)
    loads = [
        subprocess.Popen(
            [sys.executable, "-c", f"from bench.machine import busy; busy({args.seconds})"],
            cwd=Path(__file__).resolve().parents[1],
        )
        for _ in range(args.load)
    ]
    verdict = judge(probe(args.seconds))
    for load in loads:
        load.wait()
    if args.out:
        args.out.write_text(json.dumps(verdict.__dict__))
    else:
        print(verdict.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
