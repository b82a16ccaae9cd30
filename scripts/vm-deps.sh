#!/usr/bin/env bash
# Installs what the virtual-machine tests need (tests/src/vm.rs, tests/tests/vm_dax.rs), when it
# is missing (idempotent, quiet when all is there):
#   - Debian packages: qemu-system-x86 (the machines, TCG), ndctl (run inside them from the
#     host's root to make the device-dax namespace), busybox-static (the initramfs' /init),
#     e2fsprogs (mkfs.ext4 for fs-dax);
#   - a kernel for the machines: the package Debian's linux-image-amd64 depends on, downloaded
#     (not installed) into ${FAMFS_RUN_VM_CACHE:-$HOME/.cache/famfs-run/vm} and unpacked into
#     kernel-<version>/ there; `current-kernel` in that directory names it (one line), which is
#     how the tests find it. FAMFS_RUN_VM_REFRESH=1 resolves the kernel package again (after
#     Debian updates it) instead of keeping the current one;
#   - /opt/famfs on the host (each machine mounts its own over it for its system UUID).
# Any failure exits non-zero with the installer's error: CI fails rather than skips the tests.
set -euo pipefail

cache=${FAMFS_RUN_VM_CACHE:-$HOME/.cache/famfs-run/vm}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_get() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

updated=""
apt_update() {
    [ -n "$updated" ] && return
    apt_get update -qq
    updated=1
}

apt_packages=()
for p in qemu-system-x86 ndctl busybox-static e2fsprogs; do
    installed "$p" || apt_packages+=("$p")
done
if [ ${#apt_packages[@]} -gt 0 ]; then
    echo "vm-deps: installing ${apt_packages[*]} (Debian packages)"
    apt_update
    apt_get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

[ -d /opt/famfs ] || $sudo mkdir -p /opt/famfs

# The kernel uncompressed, boot/vmlinux-VERSION, when it can boot so (PVH entry): QEMU then
# loads the ELF directly and the guest skips the x86 decompressor, ~3 s of each boot under TCG.
make_vmlinux() {
    local kdir=$1 version=$2 out off
    out="$kdir/boot/vmlinux-$version"
    [ -e "$out" ] && return 0
    grep -q '^CONFIG_PVH=y' "$kdir/boot/config-$version" 2>/dev/null || return 0
    # The xz stream inside the bzImage (Debian's compression); for others the machines boot vmlinuz.
    off=$(LC_ALL=C grep -obUaP '\xfd\x37\x7a\x58\x5a\x00' "$kdir/boot/vmlinuz-$version" | head -n1 | cut -d: -f1 || true)
    [ -n "$off" ] || return 0
    command -v xz >/dev/null || { apt_update; apt_get install -y -qq --no-install-recommends xz-utils >/dev/null; }
    # xz exits 1 on the bzImage's bytes after the stream; the ELF header check below is what counts.
    tail -c +$((off + 1)) "$kdir/boot/vmlinuz-$version" | xz -dcq >"$out.tmp" 2>/dev/null || true
    if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
        mv "$out.tmp" "$out"
    else
        echo "vm-deps: could not uncompress $kdir/boot/vmlinuz-$version (the machines boot it compressed)" >&2
        rm -f "$out.tmp"
    fi
}

# The kernel: keep the current one unless asked to refresh.
current="$cache/current-kernel"
if [ -z "${FAMFS_RUN_VM_REFRESH:-}" ] && [ -s "$current" ]; then
    kdir=$(head -n1 "$current")
    version=""
    for m in "$kdir"/lib/modules/*/modules.order; do
        [ -e "$m" ] && version=$(basename "$(dirname "$m")")
    done
    if [ -n "$version" ] && [ -e "$kdir/boot/vmlinuz-$version" ]; then
        make_vmlinux "$kdir" "$version"
        exit 0
    fi
fi

mkdir -p "$cache"
resolve() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ <>]*\)$/\1/p' | head -n1; }
pkg=$(resolve)
if [ -z "$pkg" ]; then
    apt_update
    pkg=$(resolve)
fi
if [ -z "$pkg" ]; then
    echo "vm-deps: cannot resolve the kernel package that linux-image-amd64 depends on (apt-cache depends linux-image-amd64); is this Debian?" >&2
    exit 1
fi
version=${pkg#linux-image-}
kdir="$cache/kernel-$version"

if ! [ -e "$kdir/boot/vmlinuz-$version" ]; then
    deb=$(compgen -G "$cache/${pkg}_*.deb" | head -n1 || true)
    if [ -z "$deb" ]; then
        echo "vm-deps: downloading $pkg (the machines' kernel, not installed) into $cache"
        # apt downloads as the _apt user, which cannot write into root's home: stay root there.
        dl_opts=()
        [ "$(id -u)" -ne 0 ] || dl_opts=(-o APT::Sandbox::User=root)
        if ! (cd "$cache" && apt-get download -qq "${dl_opts[@]}" "$pkg"); then
            # Stale package lists name a file the mirror no longer has.
            apt_update
            (cd "$cache" && apt-get download -qq "${dl_opts[@]}" "$pkg")
        fi
        deb=$(compgen -G "$cache/${pkg}_*.deb" | head -n1 || true)
        [ -n "$deb" ] || { echo "vm-deps: apt-get download $pkg left no .deb in $cache" >&2; exit 1; }
    fi
    echo "vm-deps: unpacking $(basename "$deb") into $kdir"
    rm -rf "$kdir.tmp"
    dpkg-deb -x "$deb" "$kdir.tmp"
    # busybox insmod loads plain .ko files: decompress modules of kernels that ship them packed.
    if [ -n "$(find "$kdir.tmp/lib/modules" -name '*.ko.xz' -print -quit)" ]; then
        command -v xz >/dev/null || { apt_update; apt_get install -y -qq --no-install-recommends xz-utils >/dev/null; }
        find "$kdir.tmp/lib/modules" -name '*.ko.xz' -exec xz -d {} +
    fi
    if [ -n "$(find "$kdir.tmp/lib/modules" -name '*.ko.zst' -print -quit)" ]; then
        command -v zstd >/dev/null || { apt_update; apt_get install -y -qq --no-install-recommends zstd >/dev/null; }
        find "$kdir.tmp/lib/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +
    fi
    rm -rf "$kdir"
    mv "$kdir.tmp" "$kdir"
fi
[ -e "$kdir/boot/vmlinuz-$version" ] || { echo "vm-deps: $pkg has no boot/vmlinuz-$version" >&2; exit 1; }
make_vmlinux "$kdir" "$version"
echo "$kdir" >"$current.tmp"
mv "$current.tmp" "$current"
