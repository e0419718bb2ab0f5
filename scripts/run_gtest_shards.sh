#!/usr/bin/env bash
# Runs a GoogleTest binary as SHARDS parallel shards (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX) and
# fails if any shard fails; each shard's output is printed after it ends, a summary line last.
#   scripts/run_gtest_shards.sh BINARY SHARDS [gtest args...]
set -u
bin=$1 shards=$2
shift 2
tmp=$(mktemp -d)
pids=()
for ((i = 0; i < shards; i++)); do
  GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i "$bin" "$@" >"$tmp/shard$i.log" 2>&1 &
  pids+=($!)
done
failed=0 passed=0
for ((i = 0; i < shards; i++)); do
  wait "${pids[$i]}" || failed=$((failed + 1))
  cat "$tmp/shard$i.log"
  n=$(grep -o '\[  PASSED  \] [0-9]*' "$tmp/shard$i.log" | grep -o '[0-9]*$' || echo 0)
  passed=$((passed + ${n:-0}))
done
rm -rf "$tmp"
echo "shards: $shards, failed shards: $failed, tests passed: $passed"
[ "$failed" -eq 0 ]
