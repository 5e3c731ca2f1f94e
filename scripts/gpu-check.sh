#!/usr/bin/env bash
# Runs on a lent GPU machine (no Node, no network) from the repository root, after
# scripts/gpu-pack.sh made .gpu/ here: the WebGPU tests and the benchmark, logs under $OUT.
# Locally (OUT unset) it runs the same steps on whatever adapter this machine has.
set -uo pipefail
out="${OUT:-/tmp/gpu-out}"; mkdir -p "$out"
work=$(mktemp -d)
xz -dc .gpu/node.xz > "$work/node" && chmod +x "$work/node"
if ! ldconfig -p | grep -q libvulkan.so.1; then for f in .gpu/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
tar -C "$work" -xJf .gpu/pack.tar.xz
cd "$work"
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee "$out/gpu.txt"
"$work/node" --test --test-reporter=spec dist/test/webgpu.test.js 2>&1 | tee "$out/webgpu-tests.log"
"$work/node" dist/bench/run.js --skip-cpu-step 2>&1 | tee "$out/bench.log"
