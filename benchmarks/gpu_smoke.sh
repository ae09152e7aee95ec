#!/usr/bin/env bash
# GPU smoke checks for a box with CUDA: one PASS / FAIL / SKIP line per check, exit 1 if any failed.
#
#   bash benchmarks/gpu_smoke.sh            # uses `python` (or $PYTHON), from the repo root or anywhere
#
# Each check is short (seconds to a minute on a GPU); their logs stay in the printed folder.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d -t lth-gpu-smoke.XXXXXX)
RUNS="$WORK/runs"
export LTH_TUI_RUNS_DIR="$RUNS"
failed=0
echo "logs and runs: $WORK"

check() {  # check NAME COMMAND...: PASS when the command exits 0
    local name=$1
    shift
    if "$@" >"$WORK/$name.log" 2>&1; then
        echo "PASS $name"
    else
        echo "FAIL $name (log: $WORK/$name.log)"
        failed=1
    fi
}

last_run() {  # the run dir a `lth-tui run --quiet` printed last ("done: DIR")
    tail -n 1 "$WORK/$1.log" | sed 's/^[a-z]*: //'
}

check cuda-visible "$PY" -c "import sys, torch; print(torch.cuda.get_device_name(0)); sys.exit(0 if torch.cuda.is_available() else 1)"
if [ "$failed" = 1 ]; then
    echo "no CUDA device: nothing else to check"
    exit 1
fi
# The tests that skip without CUDA (device-parametrised), now on the GPU.
check device-tests "$PY" -m pytest -q -rs tests/test_criteria.py tests/test_datasets.py tests/test_sweep_batch.py -k cuda
check digits-quick "$PY" -m lth_tui.cli run digits-quick --device cuda --quiet
check batched-trials bash -c "'$PY' -m lth_tui.cli run digits-quick --device cuda --trials 4 --set parallel_trials=true \
    --set train.iterations=300 --quiet && grep -l '\"parallel_trials\": true' '$RUNS'/*/events.jsonl"
RUN=$(last_run digits-quick)
check lmc "$PY" -m lth_tui.cli lmc "$RUN" --round 1
check learned-supermask "$PY" -m lth_tui.cli run supermask-mnist1d --device cuda --set train.iterations=300 \
    --set supermask.rounds=2 --quiet
check batched-sweep bash -c "'$PY' -m lth_tui.cli run digits-quick --device cuda --set train.iterations=300 --quiet \
    --sweep prune.criterion=large_final,random --sweep seed=0,1 | tee /dev/stderr | grep -q 'training 4 runs together'"
# train.cuda_graphs: graphed vs eager IMP runs on this GPU (same masks, accuracies within tolerance), then its speed
check cuda-graphs "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda_graphs.py
check cuda-graphs-bench "$PY" benchmarks/bench_cuda_graphs.py --device cuda --iterations 200 --repeats 3
check cuda-graphs-run "$PY" -m lth_tui.cli run digits-quick --device cuda --set train.cuda_graphs=true \
    --set train.iterations=300 --quiet
exit $failed
