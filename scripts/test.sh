#!/usr/bin/env bash
# Runs every PbsMarket test suite: the .NET test projects (against real Redis, PostgreSQL, anvil and
# Chromium that the tests start themselves), the Solidity tests (forge), and a check that a failing
# test really fails the run. Ends with one line: "N passed, N failed[, N skipped]".
#   scripts/test.sh                 everything
#   scripts/test.sh --filter EXPR   only .NET tests matching a dotnet-test filter (forge skipped)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
filter=""
if [ "${1:-}" = "--filter" ]; then filter="${2:?--filter needs an expression}"; fi

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$ROOT/tools/bin:$PATH"

passed=0 failed=0 skipped=0 broken=0
log_dir=$(mktemp -d /tmp/pbs-testlog-XXXXXX)
trap 'rm -rf "$log_dir"' EXIT

# Sums the "Failed: a, Passed: b, Skipped: c" lines that dotnet test prints per test assembly.
count_dotnet() {
  local f=$1 p=0 x=0 s=0
  while read -r line; do
    [[ $line =~ Failed:\ +([0-9]+),\ Passed:\ +([0-9]+),\ Skipped:\ +([0-9]+) ]] || continue
    x=$((x + BASH_REMATCH[1])); p=$((p + BASH_REMATCH[2])); s=$((s + BASH_REMATCH[3]))
  done < <(grep -E "(Passed|Failed)! +- Failed:" "$f")
  echo "$p $x $s"
}

echo "== build"
if ! dotnet build PbsMarket.sln --nologo -clp:ErrorsOnly -v:quiet; then
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

# One test assembly at a time: the suites run real servers and timed auctions, and a 2-core machine
# running them all at once would make the timing, not the code, decide the outcome.
for project in $(ls tests/*/*.Tests.csproj | sort); do
  name=$(basename "$project" .csproj)
  echo "== $name"
  args=(test "$project" --no-build --nologo --blame-hang-timeout 10m)
  [ -n "$filter" ] && args+=(--filter "$filter")
  dotnet "${args[@]}" 2>&1 | tee "$log_dir/$name.log"
  rc=${PIPESTATUS[0]}
  read -r p x s < <(count_dotnet "$log_dir/$name.log")
  passed=$((passed + p)); failed=$((failed + x)); skipped=$((skipped + s))
  if [ "$rc" -ne 0 ] && [ "$x" -eq 0 ] && ! grep -q "No test matches the given testcase filter" "$log_dir/$name.log"; then
    echo "$name: dotnet test exited with $rc without a failed test (a crashed or hung test host)"; broken=$((broken + 1))
  fi
done

if [ -z "$filter" ] && [ -f contracts/foundry.toml ]; then
  echo "== Solidity tests (forge)"
  (cd contracts && forge test 2>&1) | tee "$log_dir/forge.log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E "tests passed, [0-9]+ failed" "$log_dir/forge.log" | tail -1)
  if [[ $line =~ ([0-9]+)\ tests\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2])); skipped=$((skipped + BASH_REMATCH[3]))
  fi
  if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]:-0}" -eq 0 ]; then
    echo "forge test exited with $rc without a failed test"; broken=$((broken + 1))
  fi
fi

if [ -z "$filter" ]; then
  echo "== harness self-check: a failing test must fail the run"
  PBS_PROBE_FAILURE=1 dotnet test tests/PbsMarket.Foundation.Tests --no-build --nologo \
    --filter "FullyQualifiedName~FailingTestProbe" > "$log_dir/probe.log" 2>&1
  probe_rc=$?
  read -r p x s < <(count_dotnet "$log_dir/probe.log")
  if [ "$probe_rc" -ne 0 ] && [ "$x" -eq 1 ] && [ "$p" -eq 0 ]; then
    echo "ok: the deliberately failing probe exited $probe_rc and counted 1 failed"; passed=$((passed + 1))
  else
    echo "FAILED: the deliberately failing probe exited $probe_rc with $p passed, $x failed"; cat "$log_dir/probe.log"; failed=$((failed + 1))
  fi
fi

# Servers are the tests' own children; one still running whose test host (the pid in its folder name,
# pbs-test-KIND-PID-...) has exited is a leak. Servers of another test run still in progress are left alone.
leaks=""
while read -r pid cmd; do
  [[ $cmd =~ pbs-test-[a-z]+-([0-9]+)- ]] || continue
  owner=${BASH_REMATCH[1]}
  kill -0 "$owner" 2>/dev/null && continue
  leaks+="$pid $cmd"$'\n'
  kill "$pid" 2>/dev/null || true
done < <(pgrep -af 'pbs-test-' | grep -vE 'pgrep|bash -c host=' || true)
if [ -n "$leaks" ]; then
  echo "FAILED: test servers left running (now stopped):"; printf '%s' "$leaks"; failed=$((failed + 1))
fi

failed=$((failed + broken))
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
