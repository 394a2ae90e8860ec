#!/usr/bin/env bash
# log_scan against the seed's Python version on the same folder: sample logs
# written by the demo, plus a truncated and a non-gzip file. Both must print
# the same IPs, report the same two bad files and exit 1; then the demo without
# a folder (it makes and removes its own sample logs) must exit 0 with output.
# Usage: log_scan_vs_python.sh LOG_SCAN FIND_ROBOTS_PY
set -euo pipefail
demo="$1"
py="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

"$demo" --generate "$dir/logs" --files 5 --lines 4000 --seed 7 2>/dev/null
head -c 3000 "$dir/logs/access-000.log.gz" > "$dir/logs/truncated.gz"
echo "not gzip" > "$dir/logs/plain.gz"

for backend in io_uring epoll; do
  set +e
  CORING_BACKEND=$backend "$demo" --no-progress "$dir/logs" > "$dir/c.out" 2> "$dir/c.err"
  c_rc=$?
  python3 "$py" "$dir/logs" > "$dir/py.out" 2> "$dir/py.err"
  py_rc=$?
  set -e
  [[ $c_rc == 1 && $py_rc == 1 ]] || { echo "exit status: log_scan $c_rc, python $py_rc"; exit 1; }
  cmp "$dir/c.out" "$dir/py.out" || { echo "$backend: the IP lists differ"; diff "$dir/c.out" "$dir/py.out" | head; exit 1; }
  [[ $(wc -l < "$dir/c.out") -gt 10 ]] || { echo "too few IPs"; exit 1; }
  c_bad="$(sed 's/: .*//' "$dir/c.err" | xargs -n1 basename | sort | xargs)"
  py_bad="$(sed 's/: .*//' "$dir/py.err" | xargs -n1 basename | sort | xargs)"
  [[ "$c_bad" == "plain.gz truncated.gz" && "$py_bad" == "$c_bad" ]] ||
    { echo "bad files: log_scan '$c_bad', python '$py_bad'"; cat "$dir/c.err"; exit 1; }
  echo "$backend: $(wc -l < "$dir/c.out") IPs, the same as Python's; bad files: $c_bad"
done

before="$(ls /tmp | grep -c '^log_scan\.' || true)"
"$demo" --no-progress > "$dir/sample.out"
after="$(ls /tmp | grep -c '^log_scan\.' || true)"
[[ $(wc -l < "$dir/sample.out") -gt 10 ]] || { echo "no IPs from the sample logs"; exit 1; }
[[ "$before" == "$after" ]] || { echo "the temporary folder was left behind"; exit 1; }
echo "sample logs: $(wc -l < "$dir/sample.out") IPs"
