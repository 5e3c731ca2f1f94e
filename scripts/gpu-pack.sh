#!/usr/bin/env bash
# Prepares .gpu/ (ignored by git) for a lent GPU machine (see ../shared/gpu-device.md): Node, the
# Vulkan loader, and the compiled project with the few runtime packages the WebGPU tests and the
# benchmark need. The device tool carries it with `carry: [".gpu"]`; scripts/gpu-check.sh runs there.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu
xz -T2 -6 -c "$(command -v node)" > .gpu/node.xz
(cd .gpu && apt-get download libvulkan1 >/dev/null)
npx tsc -p tsconfig.json --outDir .gpu/stage/dist
cp package.json .gpu/stage/
mods=(fp-ts io-ts fast-check pure-rand cli-progress string-width strip-ansi ansi-regex emoji-regex is-fullwidth-code-point @jax-js/jax)
for m in "${mods[@]}"; do [ -d "node_modules/$m" ] && mkdir -p ".gpu/stage/node_modules/$(dirname "$m")" && cp -r "node_modules/$m" ".gpu/stage/node_modules/$m"; done
mkdir -p .gpu/stage/node_modules/webgpu/dist
cp node_modules/webgpu/{index.js,package.json} .gpu/stage/node_modules/webgpu/
cp -r node_modules/webgpu/dist/linux-x64 .gpu/stage/node_modules/webgpu/dist/
tar -C .gpu/stage -cJf .gpu/pack.tar.xz .
rm -rf .gpu/stage
du -sh .gpu
