#!/usr/bin/env bash
# Last device call of the re-check (repo root there, OUT set). Carry: .gpu/x4, .gpu/recheck.sh,
# .gpu/rebuild_wheel.py, .gpu/WHEEL_NAME, .gpu/XZ_SHA256, .gpu/snapshot (git archive of the commit to test).
# Calls 1-3 before it: carry .gpu/xN, command `mkdir -p /tmp/xzparts && cp .gpu/xN/* /tmp/xzparts/`.
set -uo pipefail
export PYTHONUNBUFFERED=1
t0=$(date +%s)
mkdir -p /tmp/xzparts && cp .gpu/x4/* /tmp/xzparts/ && ls -la /tmp/xzparts | tee "$OUT/parts.txt"
python3 .gpu/rebuild_wheel.py "$(cat .gpu/XZ_SHA256)" "$(cat .gpu/WHEEL_NAME)" || exit 3
whl="/tmp/$(cat .gpu/WHEEL_NAME)"; mv /tmp/parts/part.0 "$whl"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$whl" || exit 4
cd .gpu/snapshot
export PYTHONPATH=/tmp/site:$PWD
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import onnxruntime as o, torch; print(o.__version__, o.get_available_providers(), torch.__version__, torch.cuda.get_device_name(0))"
  cat ../SNAPSHOT_COMMIT 2>/dev/null; } 2>&1 | tee "$OUT/gpu.txt"
echo "== GPU tests  [$(( $(date +%s) - t0 )) s]"
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider -rA tests/core/test_iobinding.py 2>&1 | tee "$OUT/gpu-tests.log" | tail -12
echo "pytest exit ${PIPESTATUS[0]}"
echo "== benchmarks/iobinding.py  [$(( $(date +%s) - t0 )) s]"
timeout 180 python3 benchmarks/iobinding.py 2>&1 | tee "$OUT/iobinding.log" | tail -25
echo "iobinding exit ${PIPESTATUS[0]}"
echo "== done  [$(( $(date +%s) - t0 )) s]"
