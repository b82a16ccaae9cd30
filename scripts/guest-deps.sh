#!/usr/bin/env bash
# Installs, when missing, what building the C guests and the SQL guest's C code (zstd) for
# wasm32 needs besides Rust: Debian's clang, wasm-ld, llvm-ar, wasi-libc and compiler-rt for
# wasm32 (apt-get, as root or through sudo). Idempotent; quiet when all is there.
set -euo pipefail

apt_packages=()
command -v clang-14 >/dev/null || apt_packages+=(clang-14)
command -v wasm-ld-14 >/dev/null || command -v wasm-ld >/dev/null || apt_packages+=(lld-14)
# llvm-ar archives zstd's C code for wasm32 (the SQL guest: arrow-rs's IPC codecs).
command -v llvm-ar-14 >/dev/null || apt_packages+=(llvm-14)
[ -e /usr/include/wasm32-wasi/stdio.h ] || [ -e /usr/share/wasi-sysroot/include/stdio.h ] || apt_packages+=(wasi-libc)
ls /usr/lib/llvm-14/lib/clang/14*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 \
    || apt_packages+=(libclang-rt-14-dev-wasm32)
if [ ${#apt_packages[@]} -gt 0 ]; then
    echo "guest-deps: installing ${apt_packages[*]} (Debian packages)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
