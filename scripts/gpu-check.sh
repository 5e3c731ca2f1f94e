#!/usr/bin/env bash
# Runs on a lent GPU machine (no Node, no network) from the repository root, after
# scripts/gpu-pack.sh made .gpu/ here: the adapter's facts, the WebGPU tests and the benchmark
# (PyTorch on the same GPU as the peer), each phase under its own time limit so that one that
# hangs cannot take the others' time, logs under $OUT. Locally (OUT unset) it runs the same steps
# on whatever adapter this machine has.
#   device run: carry [".gpu"], command `bash scripts/gpu-check.sh`
# Limits in seconds: TESTS_S (WebGPU tests), BENCH_S (benchmark).
set -uo pipefail
out="${OUT:-/tmp/gpu-out}"; mkdir -p "$out"
repo=$(pwd)
work=$(mktemp -d)
xz -dc .gpu/node.xz > "$work/node" && chmod +x "$work/node"
if ! ldconfig -p | grep -q libvulkan.so.1; then for f in .gpu/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
tar -C "$work" -xJf .gpu/pack.tar.xz
cd "$work"
# phase NAME SECONDS CMD...: runs CMD under a limit, its output to the terminal and $out/NAME.log.
phase() {
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s)"
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@" 2>&1 | grep --line-buffered -v "artificially reduced" | tee "$out/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
}
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; uname -m; nproc; } 2>&1 | tee "$out/machine.txt"
phase adapter 60 "$work/node" --input-type=module -e '
  const w = await import("./dist/src/internals.js");
  const c = await w.webgpu();
  const l = c.limits;
  console.log(JSON.stringify({ adapter: c.adapterName, cpu: c.cpu, subgroupSize: c.subgroupSize, defaultMatmul: w.defaultMatmul(c),
    workgroupStorage: l.maxComputeWorkgroupStorageSize, invocations: l.maxComputeInvocationsPerWorkgroup, maxBuffer: l.maxBufferSize }));
  c.destroy(); process.exit(0);'
# The card's practical fp32 matmul rate (cuBLAS through PyTorch, TF32 off), next to ours in the bench.
phase torch-matmul 60 python3 -c '
import time, torch
torch.backends.cuda.matmul.allow_tf32 = False
for n in (1024, 2048, 4096, 8192):
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.perf_counter(); reps = 10
    for _ in range(reps): a @ b
    torch.cuda.synchronize(); s = (time.perf_counter() - t) / reps
    print(f"torch {torch.__version__} fp32 matmul {n}^3 on {torch.cuda.get_device_name()}: {2 * n**3 / s / 1e12:.1f} TFLOP/s")'
phase webgpu-tests "${TESTS_S:-240}" "$work/node" --test --test-reporter=spec dist/test/webgpu.test.js
torch=()
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && torch=(--torch-device cuda)
phase bench "${BENCH_S:-330}" "$work/node" dist/bench/run.js --skip-cpu-step --ibot "${torch[@]}"
cd "$repo" && rm -rf "$work"
