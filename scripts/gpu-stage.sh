#!/usr/bin/env bash
# Builds a release `ebb` with the Swift standard library linked in statically and stages
# it, with the shared libraries a GPU host may lack and the tiny fixtures, in gpu-stage/
# (ignored by git). Copy that folder to a Linux x86-64 GPU host with the NVIDIA driver and
# CUDA 12/13 (NVRTC, cuBLAS) and run the command printed at the end; no Swift is needed
# there. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
stage=${EBB_STAGE_DIR:-$root/gpu-stage}
scratch=${EBB_SCRATCH_PATH:-.build-rel}
fixtures=${EBB_FIXTURES:-$root/../shared/fixtures}

swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product ebb
binary=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product ebb --show-bin-path)/ebb

rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/fixtures"
cp "$binary" "$stage/bin/ebb"
strip "$stage/bin/ebb"

# Shared libraries: everything ldd lists except the C runtime every host has (glibc,
# libstdc++, libgcc_s, zlib). The CUDA libraries are not linked: ebb dlopens them there.
ldd "$binary" | awk '/=> \// { print $1, $3 }' | while read -r name path; do
    case "$name" in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*|libz.so.*) continue ;;
    esac
    cp -L "$path" "$stage/lib/$name"
    strip --strip-unneeded "$stage/lib/$name" 2>/dev/null || true
done

# The tiny checkpoints the parity checks compare against (a few MB each).
if [ -d "$fixtures" ]; then
    for f in qwen3-moe-tiny-f32 qwen3-moe-tiny-bf16 mixtral-tiny-f32 mixtral-tiny-bf16 deepseek-v3-tiny-f32 deepseek-v3-tiny-bf16; do
        cp -r "$fixtures/$f" "$stage/fixtures/"
    done
    cp -r "$fixtures/configs" "$stage/fixtures/"
else
    echo "note: no fixtures at $fixtures (set EBB_FIXTURES); selftest-cuda will report them missing" >&2
fi

# One compressed archive of it all, for hosts reached through a size-limited copy.
if [ "${EBB_STAGE_PACK:-0}" = 1 ]; then
    mkdir -p "$stage/pack"
    tar -C "$stage" -cf - bin lib fixtures | xz -T0 -6 > "$stage/pack/ebb-gpu.tar.xz"
    echo "packed: $(du -sh "$stage/pack/ebb-gpu.tar.xz" | cut -f1) (unpack with: tar -xJf gpu-stage/pack/ebb-gpu.tar.xz -C gpu-stage)"
fi

echo
echo "staged in gpu-stage/ ($(du -sh "$stage" | cut -f1)):"
ls -l "$stage/bin" "$stage/lib"
echo
echo "On the GPU host, from the folder that holds gpu-stage/:"
echo "  LD_LIBRARY_PATH=gpu-stage/lib gpu-stage/bin/ebb selftest-cuda --fixtures gpu-stage/fixtures"
echo "(EBB_CUDA_LIB_DIR=dir1:dir2 points ebb at CUDA libraries outside the loader path and /usr/local/cuda/lib64.)"
