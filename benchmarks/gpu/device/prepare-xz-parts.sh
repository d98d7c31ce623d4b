#!/usr/bin/env bash
# Here, where downloads work, in the project's root, after `bash ../shared/gpu/split-ort-gpu.sh`:
# repack the wheel's files as one xz tarball cut into 60 MiB parts .gpu/x1 .. .gpu/x4 (4 device calls
# instead of the 5 that the 56 MiB wheel parts need), and copy the device-side scripts into .gpu/.
set -euo pipefail
name=$(cat .gpu/WHEEL_NAME)
tmp=$(mktemp -d)
cat .gpu/p*/part.* > "$tmp/$name"
mkdir "$tmp/x" && (cd "$tmp/x" && unzip -q "../$name")
tar -C "$tmp/x" -cf - . | xz -9e -T0 > "$tmp/ort.tar.xz"   # about 2.5 minutes on 2 cores
sha256sum "$tmp/ort.tar.xz" | cut -d' ' -f1 > .gpu/XZ_SHA256
rm -rf .gpu/x[0-9]*
split -b 60m -d -a 1 "$tmp/ort.tar.xz" "$tmp/ort.tar.xz."
for f in "$tmp"/ort.tar.xz.[0-9]; do i=$(( ${f##*.} + 1 )); mkdir -p ".gpu/x$i"; mv "$f" ".gpu/x$i/"; done
cp benchmarks/gpu/device/final.sh benchmarks/gpu/device/rebuild_wheel.py .gpu/
mkdir -p .gpu/snapshot && git archive HEAD | tar -x -C .gpu/snapshot   # the last commit, for its GPU tests
rm -rf "$tmp"
ls -la .gpu/x*
