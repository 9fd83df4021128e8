#!/usr/bin/env bash
# The GPU figures, on a GPU machine, in one run of at most LIMIT_S seconds (default 540) end to end.
#
#     bash bench/device_check.sh                              # from the repo root: every stage
#     STAGES="adapters train" bash bench/device_check.sh      # some stages only
#     WHEELS_DIR=.whl bash bench/device_check.sh              # missing dependencies as wheels, installed offline
#     CAPACITY_ARGS="--gpu-price-per-hour 3.5" bash bench/device_check.sh   # more flags for bench/capacity.py
#
# Every stage runs the real CSM-1B shape with random weights (written once into $CKPT_DIR and shared by all
# stages: speed does not depend on the weights' values), each under its own `timeout`:
#   adapters          bench/adapters.py --size csm-1b: step at batch 8 with 0/1/4/8 LoRA adapters, compiled and
#                     replayed as CUDA graphs as the shipped server runs it, and each configuration's first
#                     step (compile + capture: what the server's warm-up pays per step shape)
#   train             bench/train_throughput.py --size csm-1b --device cuda: learnt frames/s, bf16
#   adapters-eager    the same as `adapters`, eager (the CSMSTREAM_NO_COMPILE=1 variant)
#   capacity          bench/capacity.py --size csm-1b --device cuda with what is left of LIMIT_S; CAPACITY_ENV
#                     ("CSMSTREAM_NO_COMPILE=1" by default: a warm-up of every compiled shape does not fit in a
#                     short lease; CAPACITY_ENV= runs the shipped defaults) is given to the server
# Nothing is fetched from the network. csmstream runs from this checkout (PYTHONPATH=src); its dependencies
# must be installed, or be wheels in $WHEELS_DIR (installed with --no-index into /tmp/csmstream-site). Logs go
# to $OUT (the device tool's output folder) when it is set, else to /tmp.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
LIMIT_S=${LIMIT_S:-540}
SIZE=${SIZE:-csm-1b} # tiny, small: to try this script on a CPU (DEVICE=cpu)
DEVICE=${DEVICE:-cuda}
STAGES=${STAGES:-"adapters train adapters-eager capacity"}
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
LOGS="${OUT:-/tmp}"
export PYTHONUNBUFFERED=1
export CSMSTREAM_BENCH_CHECKPOINTS=${CKPT_DIR:-/tmp/csmstream-bench-checkpoints}
SITE=""
if [ -n "${WHEELS_DIR:-}" ]; then
    echo "== installing the wheels in $WHEELS_DIR (no network)"
    timeout 120 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/csmstream-site "$WHEELS_DIR"/*.whl || exit 1
    SITE=":/tmp/csmstream-site"
fi
export PYTHONPATH="$PWD/src${SITE}${PYTHONPATH:+:$PYTHONPATH}"

echo "== device"
timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
timeout 60 "$PYTHON" - <<'EOF' || echo "torch: not importable"
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "")
EOF
echo "== csmstream"
if ! timeout 120 "$PYTHON" -c "import csmstream.cli, csmstream.server.app, csmstream.engine.csm_engine, websockets, httpx"; then
    echo "csmstream's dependencies are missing here (see the error above); nothing is fetched from the network:"
    echo "bring them as wheels (WHEELS_DIR=DIR) or run where \`pip install -e .\` has been done"
    exit 1
fi

left_s() { echo $((LIMIT_S - SECONDS)); }
stage() { # name, seconds at most, command...
    local name=$1 limit=$2
    shift 2
    [ "$(left_s)" -lt "$limit" ] && limit=$(($(left_s) - 5))
    if [ "$limit" -lt 30 ]; then
        echo "== $name: skipped, ${limit} s left of LIMIT_S=${LIMIT_S}"
        return
    fi
    echo "== $name (at most ${limit} s; started at ${SECONDS} s)"
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    local status=${PIPESTATUS[0]}
    [ "$status" -eq 124 ] && echo "$name ran past ${limit} s and was stopped (the lines above are complete)"
    echo "== $name: exit $status at ${SECONDS} s"
}
for name in $STAGES; do
    case "$name" in
    adapters) stage adapters 200 "$PYTHON" bench/adapters.py --size "$SIZE" --device "$DEVICE" --steps 20 ;;
    train) stage train 110 "$PYTHON" bench/train_throughput.py --size "$SIZE" --device "$DEVICE" --steps 8 ;;
    adapters-eager) stage adapters-eager 80 "$PYTHON" bench/adapters.py --size "$SIZE" --device "$DEVICE" --steps 20 --no-compile ;;
    capacity)
        # the capacity run stops starting loads 40 s before its hard limit
        limit=$(($(left_s) - 10))
        # shellcheck disable=SC2086  # CAPACITY_ENV and CAPACITY_ARGS are lists
        stage capacity "$limit" env ${CAPACITY_ENV-CSMSTREAM_NO_COMPILE=1} "$PYTHON" bench/capacity.py --size "$SIZE" \
            --device "$DEVICE" --rates 1 2 4 8 16 --duration-s 15 --budget-s $((limit - 40)) --keep-env ${CAPACITY_ARGS:-}
        ;;
    *) echo "unknown stage $name (adapters, train, adapters-eager, capacity)" ;;
    esac
done
echo "== done in ${SECONDS} s; logs in $LOGS"
