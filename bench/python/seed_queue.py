#!/usr/bin/env python3
"""The seed's queue.Queue producer/consumer (two threads), timed.

The recipe from the seed (a producer thread put()s items, then a sentinel; a
consumer thread get()s until it sees the sentinel and puts it back), with the
sleeps and print() calls removed so that only the queue traffic is measured.
The C++ counterpart is BM_QueueThroughput in bench/sync_queue_bench.cpp.

Prints one line per run and, last, the median:
    python_ns_per_item <median>
"""
import argparse
import platform
import statistics
import time
from queue import Queue
from threading import Thread

_sentinel = object()


def producer(out_q, n):
    for i in range(n):
        out_q.put(i)
    out_q.put(_sentinel)


def consumer(in_q, result):
    total = 0
    while True:
        data = in_q.get()
        if data is _sentinel:
            in_q.put(_sentinel)
            break
        total += data
    result.append(total)


def one_run(items):
    q = Queue()
    result = []
    t1 = Thread(target=consumer, args=(q, result))
    t2 = Thread(target=producer, args=(q, items))
    t0 = time.perf_counter()
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    elapsed = time.perf_counter() - t0
    assert result == [items * (items - 1) // 2], "items lost or duplicated"
    return elapsed * 1e9 / items


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{args.items} items, queue.Queue, 2 threads")
    results = []
    for r in range(args.repeat):
        ns = one_run(args.items)
        results.append(ns)
        print(f"run {r + 1}: {ns:.1f} ns/item")
    print(f"python_ns_per_item {statistics.median(results):.1f}")


if __name__ == "__main__":
    main()
