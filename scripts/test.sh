#!/usr/bin/env bash
# Runs every PbsMarket test suite: the .NET test projects (against real Redis, PostgreSQL, anvil and
# Chromium that the tests start themselves), the Solidity tests (forge), and a self-check that a failing
# test, and a crashing test host, really fail the run. Ends with one line: "N passed, N failed[, N skipped]".
#   scripts/test.sh                        everything
#   scripts/test.sh --filter EXPR          only .NET tests matching a dotnet-test filter (forge and the self-check skipped)
#   scripts/test.sh --suite NAME           only tests/PbsMarket.NAME.Tests (e.g. Dashboard, Relay); may be repeated
#   scripts/test.sh --repeat N [...]       the chosen .NET tests N times, with a busy loop keeping one core loaded,
#                                          then each test that failed in any run (see docs/testing.md)
#   scripts/test.sh --no-load              with --repeat: no busy loop
#   scripts/test.sh --self-check           only the harness self-check (part of every full run)
# Counts come only from what the test runners reported (the TRX file of each assembly, forge's summary).
# An assembly that runs no test fails (unless a filter or suite choice excluded all of it); a test host that
# crashes fails the run, and the tests it never ran are named and counted as failed.
# Seeds: PBS_FSCHECK_SEED (property tests) and PBS_FUZZ_SEED (forge fuzzing) replay a run; both are logged.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
filter="" repeat=0 load=1 suites=() self_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --filter) filter="${2:?--filter needs an expression}"; shift 2 ;;
    --suite) suites+=("${2:?--suite needs a name, e.g. Dashboard}"); shift 2 ;;
    --repeat) repeat="${2:?--repeat needs a count}"; shift 2 ;;
    --no-load) load=0; shift ;;
    --self-check) self_only=1; shift ;;
    *) echo "unknown argument: $1 (see the top of scripts/test.sh)"; echo "0 passed, 1 failed"; exit 2 ;;
  esac
done

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$ROOT/tools/bin:$PATH"

passed=0 failed=0 skipped=0 broken=0
log_dir=$(mktemp -d /tmp/pbs-testlog-XXXXXX)
busy_pid=""
cleanup() {
  [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null
  rm -rf "$log_dir"
}
trap cleanup EXIT

echo "== build"
if ! dotnet build PbsMarket.sln --nologo -clp:ErrorsOnly -v:quiet; then
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

# Everything the suites start carries this run's mark in its environment (servers, Chromium and its helpers,
# devnet processes, test hosts), and keeps its files under this run's own temp folder: the leak check at the
# end finds what is left of this run, and only of this run (other runs on the machine have their own mark).
run_id="pbs-run-$$-$(date +%s)"
export PBS_TEST_RUN="$run_id"
export TMPDIR="$log_dir/tmp"
mkdir -p "$TMPDIR"
# PostgreSQL runs as its own user when we are root: it must be able to reach its folder, as under /tmp.
chmod 755 "$log_dir"; chmod 1777 "$TMPDIR"

seed_fs="${PBS_FSCHECK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
seed_fuzz="${PBS_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
export PBS_FSCHECK_SEED="$seed_fs"
echo "seeds: PBS_FSCHECK_SEED=$seed_fs PBS_FUZZ_SEED=$seed_fuzz (set them to replay this run's property and fuzz tests)"

projects=()
for project in $(ls tests/*/*.Tests.csproj | sort); do
  name=$(basename "$project" .csproj)
  if [ ${#suites[@]} -gt 0 ]; then
    keep=0
    for s in "${suites[@]}"; do [ "$name" = "PbsMarket.$s.Tests" ] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  projects+=("$project")
done
if [ ${#projects[@]} -eq 0 ]; then echo "no test project matches --suite ${suites[*]}"; echo "0 passed, 1 failed"; exit 1; fi

# Per-run results of each test: "outcome<TAB>name" lines, for --repeat's report.
results_all="$log_dir/results.tsv"
: > "$results_all"

# Reads a TRX file: prints "total executed passed failed skipped" from its counters, and appends each
# test's outcome to $2.
read_trx() {
  local trx=$1 out=$2 counters total executed p x
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  attr() { [[ $counters =~ $1=\"([0-9]+)\" ]] && echo "${BASH_REMATCH[1]}" || echo 0; }
  total=$(attr total); executed=$(attr executed); p=$(attr passed); x=$(( $(attr failed) + $(attr error) + $(attr timeout) + $(attr aborted) ))
  grep -o '<UnitTestResult [^>]*>' "$trx" | while read -r line; do
    [[ $line =~ testName=\"([^\"]*)\" ]] && n=${BASH_REMATCH[1]} || continue
    [[ $line =~ outcome=\"([A-Za-z]*)\" ]] && o=${BASH_REMATCH[1]} || o=Unknown
    printf '%s\t%s\n' "$o" "$n"
  done > "$out"
  local s; s=$(grep -c '^NotExecuted' "$out")
  echo "$total $executed $p $x $s"
}

# Runs one test assembly; adds to the counts; returns 0 when it was clean (no failure, not broken).
# $1 project, $2 label for logs, then extra environment assignments for the test host.
run_assembly() {
  local project=$1 label=$2; shift 2
  local name; name=$(basename "$project" .csproj)
  local dir="$log_dir/$label" log="$log_dir/$label.log"
  mkdir -p "$dir"
  local args=(test "$project" --no-build --nologo --blame-hang-timeout 10m
    --logger "trx;LogFileName=$name.trx" --results-directory "$dir")
  [ -n "$filter" ] && args+=(--filter "$filter")
  env "$@" dotnet "${args[@]}" 2>&1 | tee "$log" | grep -vE '^(Test run for|A total of|Results File:|Attachments:|  /|\s*$)'
  local rc=${PIPESTATUS[0]}
  local trx; trx=$(ls "$dir"/*.trx 2>/dev/null | head -1)
  local total=0 executed=0 p=0 x=0 s=0 results="$dir/results.tsv"
  : > "$results"
  if [ -n "$trx" ]; then read -r total executed p x s < <(read_trx "$trx" "$results"); fi
  sed "s/\t/\t$name: /" "$results" | sed 's/^/'"$label"'\t/' >> "$results_all"
  passed=$((passed + p)); failed=$((failed + x)); skipped=$((skipped + s))
  local clean=0
  [ "$x" -gt 0 ] && clean=1
  local crashed=0
  if grep -qE "Test host process crashed|The active test run was aborted|Test Run Aborted" "$log"; then crashed=1; fi
  if [ "$rc" -ne 0 ] && [ "$x" -eq 0 ]; then crashed=1; fi
  if [ -z "$trx" ] && ! grep -q "No test matches the given testcase filter" "$log"; then crashed=1; fi
  if [ $crashed = 1 ]; then
    # Which tests did it never finish? The assembly's list (with the same filter) minus what it reported.
    local listed="$dir/listed.txt"
    local largs=(test "$project" --no-build --nologo --list-tests)
    [ -n "$filter" ] && largs+=(--filter "$filter")
    dotnet "${largs[@]}" 2>/dev/null | sed -n '/The following Tests are available:/,$p' | tail -n +2 | sed 's/^ *//' | grep -v '^$' > "$listed" || true
    local missing; missing=$(cut -f2 "$results" | grep -vxF -f - "$listed" 2>/dev/null || cat "$listed")
    local n_missing; n_missing=$(printf '%s' "$missing" | grep -c . || true)
    echo "BROKEN: $name: the test host crashed or dotnet test exited $rc with $x failed; $n_missing test(s) it never finished (counted as failed):"
    printf '%s\n' "$missing" | grep . | sed 's/^/    never finished: /'
    printf '%s\n' "$missing" | grep . | sed "s/^/$label\tNeverFinished\t$name: /" >> "$results_all"
    failed=$((failed + n_missing)); broken=$((broken + 1)); clean=1
  elif [ "$total" -eq 0 ] || [ "$executed" -eq 0 ]; then
    if [ -n "$filter" ]; then
      echo "$name: no test matches the filter"
    else
      echo "FAILED: $name ran no test (an assembly whose tests are not discovered hides them all)"; broken=$((broken + 1)); clean=1
    fi
  fi
  return $clean
}

# A busy loop pinned to one core, for --repeat: a loaded 2-core machine is where timing bugs show.
start_load() {
  [ $load = 1 ] || return 0
  if command -v taskset >/dev/null 2>&1; then taskset -c 0 sh -c 'while :; do :; done' & else sh -c 'while :; do :; done' & fi
  busy_pid=$!
  echo "(busy loop pid $busy_pid keeps core 0 loaded)"
}
stop_load() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; wait "$busy_pid" 2>/dev/null; busy_pid=""; }

if [ "$repeat" -gt 0 ]; then
  start_load
  for run in $(seq 1 "$repeat"); do
    for project in "${projects[@]}"; do
      echo "== run $run/$repeat: $(basename "$project" .csproj)"
      run_assembly "$project" "run$run-$(basename "$project" .csproj)"
    done
  done
  stop_load
  echo "== repeat report ($repeat runs${filter:+, filter $filter}${suites:+, suites ${suites[*]}})"
  flaky=$(awk -F'\t' '$2 != "Passed" && $2 != "NotExecuted" {print $3}' "$results_all" | sort | uniq -c | sort -rn)
  if [ -n "$flaky" ]; then
    echo "tests that failed (or never finished) in some run, with the number of runs:"
    printf '%s\n' "$flaky" | while read -r k t; do echo "  $k of $repeat: $t"; done
  else
    echo "no test failed in any of the $repeat runs"
  fi
else
  if [ $self_only = 0 ]; then
    for project in "${projects[@]}"; do
      name=$(basename "$project" .csproj)
      echo "== $name"
      run_assembly "$project" "$name"
    done
  fi

  skipped_parts=()
  if [ -n "$filter" ] || [ ${#suites[@]} -gt 0 ]; then
    skipped_parts+=("forge (Solidity tests)" "the harness self-check")
  fi
  [ $self_only = 1 ] && skipped_parts+=("every test suite (--self-check)")
  if [ ${#skipped_parts[@]} -eq 0 ] && [ -f contracts/foundry.toml ]; then
    echo "== Solidity tests (forge), fuzz seed $seed_fuzz"
    (cd contracts && forge test --fuzz-seed "$seed_fuzz" 2>&1) | tee "$log_dir/forge.log"
    rc=${PIPESTATUS[0]}
    line=$(grep -E "tests passed, [0-9]+ failed" "$log_dir/forge.log" | tail -1)
    fx=0
    if [[ $line =~ ([0-9]+)\ tests\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped ]]; then
      passed=$((passed + BASH_REMATCH[1])); fx=${BASH_REMATCH[2]}; failed=$((failed + fx)); skipped=$((skipped + BASH_REMATCH[3]))
      [ "${BASH_REMATCH[1]}" -eq 0 ] && [ "$fx" -eq 0 ] && { echo "FAILED: forge ran no test"; broken=$((broken + 1)); }
    else
      echo "FAILED: forge printed no summary"; broken=$((broken + 1))
    fi
    if [ "$rc" -ne 0 ] && [ "$fx" -eq 0 ]; then
      echo "forge test exited with $rc without a failed test"; broken=$((broken + 1))
    fi
    [ "$fx" -gt 0 ] && echo "replay the fuzz inputs: PBS_FUZZ_SEED=$seed_fuzz scripts/test.sh (or: cd contracts && forge test --fuzz-seed $seed_fuzz)"
    # The C# deploy reads the committed artifacts: the bytecode forge just built must be the committed one.
    for artifact in ProposerRegistry.sol/ProposerRegistry BuilderEscrow.sol/BuilderEscrow Inbox.sol/Inbox; do
      file="contracts/out/$artifact.json"
      if ! git rev-parse --git-dir >/dev/null 2>&1; then
        echo "FAILED: not in a git work tree (or git refuses it): the committed artifacts cannot be checked"; broken=$((broken + 1)); break
      fi
      if ! python3 -c '
import json, subprocess, sys
path = sys.argv[1]
built = json.load(open(path))["bytecode"]["object"]
committed = json.loads(subprocess.run(["git", "show", "HEAD:" + path], capture_output=True, check=True).stdout)["bytecode"]["object"]
sys.exit(0 if built == committed else 1)' "$file"; then
        echo "FAILED: $file as committed (HEAD) differs from what forge builds from contracts/src, or could not be read (above); run forge build, then commit it (git add -f $file)"
        broken=$((broken + 1))
      fi
    done
  fi

  if [ ${#skipped_parts[@]} -eq 0 ] || [ $self_only = 1 ]; then
    # The self-check's own probe runs are not counted as tests: only a harness that lies counts, as a failure.
    echo "== harness self-check: a failing test and a crashing test host must fail the run"
    probe=tests/PbsMarket.Foundation.Tests/PbsMarket.Foundation.Tests.csproj
    saved=("$passed" "$failed" "$skipped" "$broken")
    filter="FullyQualifiedName~FailingTestProbe.Fails_only_when_asked_to"
    run_assembly "$probe" probe-fail PBS_PROBE_FAILURE=1 > "$log_dir/probe-fail.out"; probe_rc=$?
    got_fail=("$passed" "$failed" "$broken")
    passed=${saved[0]} failed=${saved[1]} skipped=${saved[2]} broken=${saved[3]}
    filter="FullyQualifiedName~FailingTestProbe"
    run_assembly "$probe" probe-crash PBS_PROBE_CRASH=1 > "$log_dir/probe-crash.out"; crash_rc=$?
    got_crash=("$passed" "$failed" "$broken")
    passed=${saved[0]} failed=${saved[1]} skipped=${saved[2]} broken=${saved[3]}
    filter=""
    if [ $probe_rc -ne 0 ] && [ $((got_fail[1] - saved[1])) -eq 1 ] && [ $((got_fail[0] - saved[0])) -eq 0 ] && [ $((got_fail[2] - saved[3])) -eq 0 ]; then
      echo "ok: the deliberately failing probe counted 1 failed, 0 passed"
    else
      echo "FAILED: the deliberately failing probe counted $((got_fail[0] - saved[0])) passed, $((got_fail[1] - saved[1])) failed"; cat "$log_dir/probe-fail.out"; failed=$((failed + 1))
    fi
    if [ $crash_rc -ne 0 ] && [ $((got_crash[2] - saved[3])) -eq 1 ] && [ $((got_crash[1] - saved[1])) -ge 1 ] && grep -q "never finished: .*Crashes_the_test_host" "$log_dir/probe-crash.out"; then
      echo "ok: the deliberately crashing probe was reported broken, with $((got_crash[1] - saved[1])) test(s) never finished counted as failed"
    else
      echo "FAILED: the deliberately crashing probe was not reported as a crash with its unfinished tests"; cat "$log_dir/probe-crash.out"; failed=$((failed + 1))
    fi
  fi
  [ ${#skipped_parts[@]} -gt 0 ] && [ $self_only = 0 ] && echo "not run (a --filter or --suite run is .NET tests only): ${skipped_parts[*]}"
fi

# Leaks: a process of this run (its environment carries the run's mark) still alive after every suite
# has ended, or a server folder left in the run's temp folder. The reapers of the test hosts need a moment
# (they poll every second, then give servers 2 s), so wait up to 15 s before calling it a leak.
own_procs() {
  local me=$$ pid
  for pid in $(grep -lsa "PBS_TEST_RUN=$run_id" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    [ "$pid" = "$me" ] && continue
    # this script's own subshells and pipelines (their parent chain reaches us)
    local p=$pid own=0
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
      [ "$p" = "$me" ] && { own=1; break; }
      p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || true)
    done
    [ $own = 1 ] && continue
    local cmd; cmd=$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-200)
    [ -n "$cmd" ] || continue # exited meanwhile (or a zombie): not running
    echo "$pid $cmd"
  done
}
# dotnet's build servers and MSBuild nodes started by `dotnet test` outlive it by design; they are not test servers.
not_build_server() { grep -vE 'MSBuild.dll|VBCSCompiler|vbcscompiler|build-server|--nodeReuse' || true; }
leaks=""
for _ in $(seq 1 15); do
  leaks=$(own_procs | not_build_server)
  [ -z "$leaks" ] && break
  sleep 1
done
if [ -n "$leaks" ]; then
  echo "FAILED: processes of this test run left running (now stopped):"; printf '%s\n' "$leaks" | sed 's/^/  /'
  printf '%s\n' "$leaks" | while read -r pid _; do kill -TERM "$pid" 2>/dev/null; done
  sleep 2
  printf '%s\n' "$leaks" | while read -r pid _; do kill -KILL "$pid" 2>/dev/null; done
  failed=$((failed + 1))
fi
left_dirs=$(find "$TMPDIR" -maxdepth 1 \( -name 'pbs-test-*' -o -name 'pbs-devnet-test-*' \) 2>/dev/null)
if [ -n "$left_dirs" ]; then
  echo "FAILED: server folders left behind:"; printf '%s\n' "$left_dirs" | sed 's/^/  /'; failed=$((failed + 1))
fi

failed=$((failed + broken))
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
