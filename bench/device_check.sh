#!/usr/bin/env bash
# The capacity of the server as shipped, on a GPU machine, in at most 8 minutes end to end.
#
#     bash bench/device_check.sh                     # from the repo root
#     LIMIT_S=400 bash bench/device_check.sh         # a tighter limit (seconds, everything included)
#     CAPACITY_ARGS="--gpu-price-per-hour 3.5" bash bench/device_check.sh   # more flags for bench/capacity.py
#
# 1. prints the device (nvidia-smi, torch);
# 2. makes sure csmstream imports. Nothing is fetched from the network: if csmstream is not installed, it is
#    installed from this checkout with `pip install --no-index --no-build-isolation --no-deps -e .`; its
#    dependencies (fastapi, uvicorn, websockets, pydantic-settings, ...) must already be there, or be wheels
#    in $WHEELS_DIR (installed with --no-index); the script says which are missing and stops otherwise;
# 3. runs `python bench/capacity.py --size csm-1b --device cuda` (the real CSM-1B shape, random weights, written
#    on the spot; the server with its defaults) under `timeout`, with a --budget-s that ends it in time, and
#    prints its table, its summary and the cost table. The log is also written to $OUT/capacity.log when $OUT
#    is set (the device tool's output folder), else to /tmp/capacity.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
LIMIT_S=${LIMIT_S:-470} # everything, under 8 minutes (480 s)
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
LOG="${OUT:-/tmp}/capacity.log"
export PYTHONUNBUFFERED=1

echo "== device"
timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
timeout 60 "$PYTHON" - <<'EOF' || echo "torch: not importable"
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "")
EOF

echo "== csmstream"
IMPORTS="import csmstream.cli, csmstream.server.app, csmstream.engine.csm_engine, websockets, httpx"
if ! timeout 120 "$PYTHON" -c "$IMPORTS" 2>/dev/null; then
    if [ -n "${WHEELS_DIR:-}" ]; then
        echo "installing the wheels in $WHEELS_DIR (no network)"
        timeout 120 "$PYTHON" -m pip install -q --no-index --no-deps "$WHEELS_DIR"/*.whl
    fi
    if ! timeout 60 "$PYTHON" -c "import csmstream" 2>/dev/null; then
        echo "csmstream is not installed: installing this checkout, offline (pip install --no-index --no-build-isolation --no-deps -e .)"
        timeout 120 "$PYTHON" -m pip install -q --no-index --no-build-isolation --no-deps -e . || exit 1
    fi
    if ! timeout 120 "$PYTHON" -c "$IMPORTS"; then
        echo "csmstream's dependencies are missing here (see the error above); nothing is fetched from the network:"
        echo "bring them as wheels (WHEELS_DIR=DIR) or run where \`pip install -e .\` has been done"
        exit 1
    fi
fi
"$PYTHON" -c "import csmstream, torch; print('csmstream from', csmstream.__file__, '| torch', torch.__version__)"

# what is left of the limit: the capacity run stops starting loads 40 s before its hard timeout
REMAINING_S=$((LIMIT_S - SECONDS - 10))
BUDGET_S=$((REMAINING_S - 40))
if [ "$BUDGET_S" -lt 120 ]; then
    echo "only ${REMAINING_S} s left of LIMIT_S=${LIMIT_S}: too little for a capacity run"
    exit 1
fi
echo "== capacity (csm-1b shape, random weights; budget ${BUDGET_S} s, hard limit ${REMAINING_S} s)"
# shellcheck disable=SC2086  # CAPACITY_ARGS is a list of flags
timeout -k 15 "$REMAINING_S" "$PYTHON" bench/capacity.py --size csm-1b --device cuda \
    --rates 1 2 4 8 16 --duration-s 20 --budget-s "$BUDGET_S" ${CAPACITY_ARGS:-} 2>&1 | tee "$LOG"
STATUS=$?
[ "$STATUS" -eq 124 ] && echo "capacity.py ran past ${REMAINING_S} s and was stopped (the rows above are complete)"
echo "== done in ${SECONDS} s (exit ${STATUS}); log: $LOG"
exit "$STATUS"
