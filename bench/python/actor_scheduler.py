#!/usr/bin/env python3
"""The seed's generator ActorScheduler (Python Cookbook 12.12), timed.

The recipe from the seed: a printer actor and a counter actor that sends the
printer n and itself n - 1, counting down from N, driven by a deque of
(actor, message) deliveries. Unchanged except that
  - the printer consumes its messages silently (no print()), and
  - run() counts every delivery that reached a live generator, the two start
    messages (actor, None) included: 2N + 3 for a count of N (the counter gets
    N + 1 messages, the last one, 0, makes it return; the printer gets N).
    The seed's run() swallows StopIteration both when a generator returns and
    when a message goes to one that already has; the second kind is not
    counted (none occurs in this program).
The C++ counterpart is demos/actor_scheduler --quiet (coring::ActorScheduler),
which prints the same line; bench/run_actor_bench.sh compares the two.

Prints one line per run:
    messages=M seconds=S msgs_per_s=R
"""
import argparse
import sys
import time
from collections import deque


class ActorScheduler:
    def __init__(self):
        self._actors = {}
        self._msg_queue = deque()

    def new_actor(self, name, actor):
        self._msg_queue.append((actor, None))
        self._actors[name] = actor

    def send(self, name, msg):
        actor = self._actors.get(name)
        if actor:
            self._msg_queue.append((actor, msg))

    def run(self):
        # The seed's loop plus a counter. A StopIteration means the generator
        # returned during this delivery (counted: it reached a live actor) or
        # had already returned (uncounted: taken back the second time).
        delivered = 0
        ended = set()
        while self._msg_queue:
            actor, msg = self._msg_queue.popleft()
            delivered += 1
            try:
                actor.send(msg)
            except StopIteration:
                if actor in ended:
                    delivered -= 1
                else:
                    ended.add(actor)
        return delivered


def printer():
    while True:
        msg = yield  # consumed silently: only the message traffic is measured


def counter(sched):
    while True:
        n = yield
        if n == 0:
            break
        sched.send('printer', n)
        sched.send('counter', n - 1)


def one_run(count):
    sched = ActorScheduler()
    sched.new_actor('printer', printer())
    sched.new_actor('counter', counter(sched))
    sched.send('counter', count)
    t0 = time.perf_counter()
    messages = sched.run()
    seconds = time.perf_counter() - t0
    return messages, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000_000,
                    help="the counter's start value N (default 10,000,000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs, one line each (default 1)")
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be >= 0")

    for _ in range(args.repeat):
        messages, seconds = one_run(args.count)
        if messages != 2 * args.count + 3:
            print(f"error: {messages} messages delivered, expected 2N+3 = {2 * args.count + 3}",
                  file=sys.stderr)
            return 1
        rate = messages / seconds if seconds > 0 else 0.0
        print(f"messages={messages} seconds={seconds:.6f} msgs_per_s={rate:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
