#!/usr/bin/env python3
"""The seed's generator TaskScheduler (deque + next()), timed.

This is the recipe from the seed (countdown/countup generators driven by a
round-robin TaskScheduler), with the print() calls removed so that only the
switching is measured: TASKS generator tasks each yield YIELDS times. One
"switch" is one next() call made by run(); a task that yields N times is
resumed N + 1 times (the last one raises StopIteration), the same count the C++
benchmarks (bench/yield_bench.cpp) use.

Prints one line per run and, last, the median:
    python_ns_per_switch <median>
"""
import argparse
import platform
import statistics
import time
from collections import deque


class TaskScheduler:
    def __init__(self):
        self._task_queue = deque()

    def new_task(self, task):
        self._task_queue.append(task)

    def run(self):
        while self._task_queue:
            task = self._task_queue.popleft()
            try:
                next(task)
                self._task_queue.append(task)
            except StopIteration:
                pass


def countdown(n):
    while n > 0:
        yield
        n -= 1


def countup(n):
    x = 0
    while x < n:
        yield
        x += 1


def one_run(tasks, yields):
    sched = TaskScheduler()
    for i in range(tasks):
        # Half countdown, half countup, as in the seed's example.
        sched.new_task(countdown(yields) if i % 2 == 0 else countup(yields))
    switches = tasks * (yields + 1)
    t0 = time.perf_counter()
    sched.run()
    elapsed = time.perf_counter() - t0
    return elapsed * 1e9 / switches


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--yields", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{args.tasks} tasks x {args.yields} yields")
    results = []
    for r in range(args.repeat):
        ns = one_run(args.tasks, args.yields)
        results.append(ns)
        print(f"run {r + 1}: {ns:.2f} ns/switch")
    print(f"python_ns_per_switch {statistics.median(results):.2f}")


if __name__ == "__main__":
    main()
