#!/bin/bash
# Boot one recording: QEMU (TCG) with a fresh 64 MiB disk, the kernel and the
# initramfs of build-initramfs.sh, then split what /init wrote into a record
# and a trace.  See data/recording/README.md.
#
#   run-qemu.sh -k VMLINUZ -i INITRD -o OUTDIR [-m RAM] [-c CPUS] [-d virtio|nvme]
#               [-a "EXTRA CMDLINE"] [-t SECONDS] [-n NAME]
#
#   -k FILE   kernel image (e.g. ROOT/boot/vmlinuz-6.12.117+deb12-amd64, or
#             arch/x86/boot/bzImage of the dynamic build)
#   -i FILE   initramfs
#   -o DIR    output directory (created); gets console.log, data.log,
#             qemu-NAME.txt, record-NAME.txt and, with rk.dump=1, trace-NAME.txt
#   -m RAM    guest memory, QEMU syntax (default 2G)
#   -c CPUS   virtual CPUs (default 2)
#   -d DISK   virtio (default): virtio-blk-pci with iommu_platform=on;
#             nvme: an emulated NVMe controller
#   -a TEXT   appended to "console=ttyS0 panic=-1 " on the kernel command line,
#             e.g. "swiotlb=512,force rk.kprobes=1 rk.dump=1 rk.maxkb=256"
#   -t SECS   host-side time limit for QEMU (default 600)
#   -n NAME   name used in the output file names (default: boot)
#
# Needs: qemu-system-x86 (qemu-system-x86_64), coreutils (timeout, truncate).
set -euo pipefail

kernel="" initrd="" outdir="" ram=2G cpus=2 disk=virtio extra="" limit=600 name=boot

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while getopts "k:i:o:m:c:d:a:t:n:h" o; do
    case "$o" in
        k) kernel=$OPTARG ;;
        i) initrd=$OPTARG ;;
        o) outdir=$OPTARG ;;
        m) ram=$OPTARG ;;
        c) cpus=$OPTARG ;;
        d) disk=$OPTARG ;;
        a) extra=$OPTARG ;;
        t) limit=$OPTARG ;;
        n) name=$OPTARG ;;
        *) usage ;;
    esac
done
[ -n "$kernel" ] && [ -n "$initrd" ] && [ -n "$outdir" ] || usage

case "$disk" in
    virtio) devopt="virtio-blk-pci,drive=d0,iommu_platform=on,disable-legacy=on" ;;
    nvme) devopt="nvme,serial=deadbeef,drive=d0" ;;
    *) echo "unknown disk type: $disk" >&2; exit 2 ;;
esac

mkdir -p "$outdir"
cp "$kernel" "$outdir/vmlinuz"
cp "$initrd" "$outdir/initrd.cpio.gz"
cd "$outdir"
rm -f disk.img console.log data.log
truncate -s 64M disk.img

# With no extra words the command line keeps its trailing space, as recorded.
append="console=ttyS0 panic=-1 $extra"
cmd=(qemu-system-x86_64 -nodefaults -display none -accel tcg -m "$ram" -smp "$cpus"
     -no-reboot -kernel vmlinuz -initrd initrd.cpio.gz -append "$append"
     -serial file:console.log -serial file:data.log
     -drive if=none,id=d0,file=disk.img,format=raw -device "$devopt")
{ printf '%q ' "${cmd[@]}"; echo; echo "host timeout: timeout $limit"; } > "qemu-$name.txt"

start=$(date +%s)
rc=0
timeout "$limit" "${cmd[@]}" || rc=$?
echo "qemu exit code $rc after $(( $(date +%s) - start )) s" >&2
rm -f disk.img

# Split data.log: the TRACE section goes to trace-NAME.txt, everything else to
# record-NAME.txt with a line saying where the trace went.  Carriage returns
# added by the serial line are removed.
tr -d '\r' < data.log | awk -v trace="trace-$name.txt" -v record="record-$name.txt" '
    /^=== [A-Z0-9_]+ ===$/ { intrace = ($0 == "=== TRACE ===") }
    intrace && $0 == "=== TRACE ===" { print "=== TRACE === (in " trace ")" > record; next }
    intrace { print > trace; next }
    { print > record }
'
echo "wrote $outdir/record-$name.txt" >&2
[ -e "trace-$name.txt" ] && echo "wrote $outdir/trace-$name.txt" >&2
exit "$rc"
