#!/usr/bin/env bash
# The last device call, from the repo root there with OUT set. Carry: the last .gpu/xN part, .gpu/final.sh,
# .gpu/rebuild_wheel.py, .gpu/on-device.sh, .gpu/WHEEL_NAME, .gpu/XZ_SHA256, .gpu/snapshot.
# Rebuilds the wheel from the xz parts, runs the project's on-device.sh verbatim against the committed
# snapshot, then the corrected GPU test command, then benchmarks/gpu/gpu_chapter.py (from the tree).
set -uo pipefail
export PYTHONUNBUFFERED=1
ROOT=$PWD
t0=$(date +%s)
mkdir -p /tmp/xzparts && cp .gpu/x[0-9]*/* /tmp/xzparts/ && ls -la /tmp/xzparts
python3 .gpu/rebuild_wheel.py "$(cat .gpu/XZ_SHA256)" "$(cat .gpu/WHEEL_NAME)" || exit 3
echo "== on-device.sh (verbatim) from the 0.1 snapshot  [$(( $(date +%s) - t0 )) s]"
cd .gpu/snapshot && mkdir -p .gpu && cp ../WHEEL_NAME ../on-device.sh .gpu/
timeout 170 bash .gpu/on-device.sh; echo "on-device.sh exit $?"
echo "== corrected GPU tests: only the file holding them  [$(( $(date +%s) - t0 )) s]"
PYTHONPATH=/tmp/site:$PWD timeout 80 python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/core/test_iobinding.py 2>&1 | tee "$OUT/gpu-tests-core.log" | tail -8
cd "$ROOT"
echo "== gpu_chapter.py  [$(( $(date +%s) - t0 )) s]"
PYTHONPATH=/tmp/site timeout 250 python3 benchmarks/gpu/gpu_chapter.py --out "$OUT"; echo "gpu_chapter exit $?"
echo "== done  [$(( $(date +%s) - t0 )) s]"
ls -la "$OUT"
