#!/bin/bash
# Build the recording initramfs: a static busybox, data/recording/init.sh as /init,
# and the disk driver modules of one kernel with a /modules.order file listing them
# in load order.  See data/recording/README.md.
#
#   build-initramfs.sh -o initrd.cpio.gz [-r ROOT -k KVER -d virtio|nvme]
#
#   -o FILE   output (gzip-compressed newc cpio)
#   -r ROOT   directory into which the kernel package was unpacked (dpkg -x),
#             i.e. the one holding lib/modules/KVER; omit for a kernel without
#             modules (the CONFIG_SWIOTLB_DYNAMIC build)
#   -k KVER   module directory name, e.g. 6.12.117+deb12-amd64 or 6.1.0-56-amd64
#   -d DISK   virtio (default): virtio_blk and what it needs; nvme: nvme and
#             what it needs
#   -b FILE   busybox binary (default /bin/busybox from busybox-static)
#   -i FILE   the /init script (default: init.sh next to this script)
#
# Needs: busybox-static, cpio, gzip, kmod (depmod, modprobe), xz-utils.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out="" root="" kver="" disk=virtio busybox=/bin/busybox init="$here/init.sh"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while getopts "o:r:k:d:b:i:h" o; do
    case "$o" in
        o) out=$OPTARG ;;
        r) root=$OPTARG ;;
        k) kver=$OPTARG ;;
        d) disk=$OPTARG ;;
        b) busybox=$OPTARG ;;
        i) init=$OPTARG ;;
        *) usage ;;
    esac
done
[ -n "$out" ] || usage
case "$disk" in
    virtio) top=virtio_blk ;;
    nvme) top=nvme ;;
    *) echo "unknown disk type: $disk" >&2; exit 2 ;;
esac
if [ -n "$root" ] && [ -z "$kver" ]; then
    echo "-r needs -k (the name of the directory under $root/lib/modules)" >&2
    exit 2
fi
[ -x "$busybox" ] || { echo "no busybox at $busybox (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
    echo "warning: $busybox is dynamically linked; the initramfs has no libraries" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/lib/modules" "$work/proc" "$work/sys" "$work/dev" "$work/tmp"
cp "$busybox" "$work/bin/busybox"
cp "$init" "$work/init"
chmod 755 "$work/bin/busybox" "$work/init"
: > "$work/modules.order"

if [ -n "$root" ]; then
    moddir="$root/lib/modules/$kver"
    [ -d "$moddir" ] || { echo "no $moddir" >&2; exit 1; }
    # a modules.dep for the unpacked tree (written inside ROOT, not on the host)
    depmod -b "$root" "$kver"
    # "insmod PATH" lines in dependency order; built-in modules show as "builtin NAME"
    modprobe -d "$root" -S "$kver" --show-depends "$top" |
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        name=$(basename "$path")
        case "$name" in
            *.ko.xz) xz -dc "$path" > "$work/lib/modules/${name%.xz}"; name=${name%.xz} ;;
            *.ko.zst) zstd -dqc "$path" > "$work/lib/modules/${name%.zst}"; name=${name%.zst} ;;
            *.ko.gz) gzip -dc "$path" > "$work/lib/modules/${name%.gz}"; name=${name%.gz} ;;
            *) cp "$path" "$work/lib/modules/$name" ;;
        esac
        echo "$name" >> "$work/modules.order"
    done
    echo "modules, in load order:" >&2
    sed 's/^/  /' "$work/modules.order" >&2
fi

(cd "$work" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -9 > "$out"
echo "wrote $out" >&2
