#!/usr/bin/env python3
"""The seed's parallel log scan (Python Cookbook 12.8): find_robots over every
*.gz file of a folder with a ProcessPoolExecutor, the per-file sets merged.

The baseline of bench/run_log_scan_bench.sh and the reference the log_scan
tests compare coring's demo with. Three changes to the recipe, all so that it
can judge any file rather than crash on the first odd one:
  - a line with fewer than seven fields is skipped (the recipe would raise
    IndexError; the seed's blog version guards the same way);
  - text is decoded as ASCII with errors='surrogateescape', so a byte >= 0x80
    is an ordinary field character instead of a UnicodeDecodeError;
  - a file that fails (not gzip, truncated, corrupt) is reported on stderr as
    "PATH: error" and contributes nothing; the others are still scanned.
stdout: the IPs, sorted, one per line. Exit status 1 if any file failed.

Usage: find_robots.py LOGDIR [--workers N]
"""
import concurrent.futures
import glob
import gzip
import io
import os
import sys
import zlib


def find_robots(filename):
    '''
    Find all of the hosts that access robots.txt in a single log file
    '''
    robots = set()
    with gzip.open(filename) as f:
        for line in io.TextIOWrapper(f, encoding='ascii', errors='surrogateescape'):
            fields = line.split()
            if len(fields) >= 7 and fields[6] == '/robots.txt':
                robots.add(fields[0])
    return robots


def find_robots_or_error(filename):
    try:
        return find_robots(filename), None
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        return set(), '%s: %s' % (type(e).__name__, e)


def find_all_robots(logdir, workers=None):
    files = sorted(glob.glob(logdir + '/*.gz'))
    all_robots = set()
    errors = []
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        for filename, (robots, error) in zip(files, pool.map(find_robots_or_error, files)):
            if error is None:
                all_robots.update(robots)
            else:
                errors.append((filename, error))
    return all_robots, errors


def main():
    args = sys.argv[1:]
    workers = None
    if '--workers' in args:
        i = args.index('--workers')
        workers = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit('usage: find_robots.py LOGDIR [--workers N]')
    if not os.path.isdir(args[0]):
        sys.exit('find_robots.py: not a folder: %s' % args[0])
    robots, errors = find_all_robots(args[0], workers)
    out = sys.stdout.buffer
    for ipaddr in sorted(robots):
        out.write(ipaddr.encode('ascii', 'surrogateescape') + b'\n')
    out.flush()
    for filename, error in errors:
        print('%s: %s' % (filename, error), file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == '__main__':
    main()
