#!/usr/bin/env bash
# The long fuzz run: one low-priority worker, every distinct finding recorded, restarted
# (with the next seed) if libFuzzer itself stops on a timeout or memory limit.
#
#   bash tests/fuzz/run_long.sh WORKDIR [SECONDS]      # default 8 hours
#
# WORKDIR gets seeds/ (generated), corpus/ (what the fuzzer keeps), findings/ (one input
# per distinct finding, listed in findings/findings.txt), log-N.txt per libFuzzer run.
# Total executions: the last "#N" of each log, added up (tests/fuzz/README.md).
set -u
work=${1:?usage: run_long.sh WORKDIR [SECONDS]}
seconds=${2:-28800}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
mkdir -p "$work/corpus" "$work/findings"
[ -d "$work/seeds" ] || "$python" "$here/corpus.py" "$work/seeds"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# The fuzz process's RSS creeps up under atheris (~0.7 KB per execution, not seen in the
# same harness without atheris): libFuzzer's RSS limit restarts it cleanly well before the
# address-space limit, which stays for single inputs that ask for gigabytes.
export LC_FUZZ_FINDINGS="$work/findings" LC_FUZZ_AS_MB=${LC_FUZZ_AS_MB:-3072}
end=$(( $(date +%s) + seconds ))
run=0
while [ "$(date +%s)" -lt "$end" ]; do
  run=$((run + 1))
  left=$(( end - $(date +%s) ))
  (cd "$work/findings" && nice -n 19 "$python" "$here/fuzz_decode.py" -seed="$run" -max_total_time="$left" \
      -timeout=120 -rss_limit_mb=1536 -max_len=4096 -print_final_stats=1 \
      "$work/corpus" "$work/seeds") >"$work/log-$run.txt" 2>&1
  echo "run $run ended with status $? at $(date -u +%H:%M:%S)" >>"$work/runs.txt"
done
