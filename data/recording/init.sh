#!/bin/busybox sh
# /init of the recording initramfs (see data/recording/README.md).
#
# Runs as PID 1 under a static busybox.  Kernel messages go to the first serial
# port; everything this script reports goes to the second one (/dev/ttyS1), in
# sections headed "=== NAME ===", the layout of data/realkernel-*/record-*.txt.
#
# Options, read from the kernel command line (the kernel ignores them):
#   rk.disk=virtio|nvme   disk to use; default: whichever appears first
#   rk.kprobes=1          add the map/map_ret/unmap kprobes (and, on a kernel with
#                         CONFIG_SWIOTLB_DYNAMIC=y, the pool probes)
#   rk.dump=1             print the whole trace at the end
#   rk.maxkb=N            write N to the disk's queue/max_sectors_kb first
#   rk.bufkb=N            ftrace buffer per CPU in KiB (default 16384)
#   rk.wltimeout=S        give up waiting for the workload after S s (default 150)
#   rk.layout=6.1|6.12|6.12dyn|none
#                         struct layout for the pool probe; default: from the
#                         kernel release and the debugfs files

/bin/busybox --install -s /bin
PATH=/bin
export PATH

mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

# data channel: raw, no echo, file descriptor 3
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1

DBG=/sys/kernel/debug/swiotlb
TR=/sys/kernel/tracing
[ -e "$TR/trace" ] || TR=/sys/kernel/debug/tracing
REL=$(uname -r)
CMDLINE=$(cat /proc/cmdline)

section() { echo "=== $* ===" >&3; }

# opt NAME DEFAULT: value of NAME=... on the kernel command line
opt() {
    for word in $CMDLINE; do
        case "$word" in
            "$1="*) echo "${word#*=}"; return 0 ;;
        esac
    done
    echo "$2"
}

DISK=$(opt rk.disk "")
KPROBES=$(opt rk.kprobes 0)
DUMP=$(opt rk.dump 0)
MAXKB=$(opt rk.maxkb "")
BUFKB=$(opt rk.bufkb 16384)
WLTIMEOUT=$(opt rk.wltimeout 150)
LAYOUT=$(opt rk.layout "")

# every file of the swiotlb debugfs directory as name=value
debugfs_values() {
    for f in "$DBG"/*; do
        [ -f "$f" ] && echo "${f##*/}=$(cat "$f")"
    done >&3 2>&1
}

# the counters after a workload step (the last two exist only with SWIOTLB_DYNAMIC)
counters() {
    line="io_tlb_used=$(cat $DBG/io_tlb_used 2>/dev/null) io_tlb_used_hiwater=$(cat $DBG/io_tlb_used_hiwater 2>/dev/null)"
    if [ -e $DBG/io_tlb_transient_nslabs ]; then
        line="$line io_tlb_nslabs=$(cat $DBG/io_tlb_nslabs) io_tlb_transient_nslabs=$(cat $DBG/io_tlb_transient_nslabs)"
    fi
    echo "$line" >&3
}

kprobe() { echo "$1" >> "$TR/kprobe_events"; }

# fire a one-shot kprobe event GROUP/NAME defined on uname(2) with fetch args ARGS,
# print its line from the trace, then remove it
probe_once() {
    kprobe "p:$1 __x64_sys_newuname $2"
    echo 1 > "$TR/events/$1/enable"
    echo 1 > "$TR/tracing_on"
    uname -a
    echo 0 > "$TR/tracing_on"
    echo 0 > "$TR/events/$1/enable"
    grep " ${1#*/}: " "$TR/trace"
    kprobe "-:$1"
    echo > "$TR/trace"
}

# ---------------------------------------------------------------- the guest
section BEGIN
section INFO
{
    echo "uname_r=$REL"
    echo "cmdline=$CMDLINE"
    echo "nproc=$(nproc)"
    for k in possible present online; do
        echo "cpu_$k=$(cat /sys/devices/system/cpu/$k)"
    done
    grep MemTotal /proc/meminfo
    grep -i -E "System RAM|Reserved|ACPI" /proc/iomem
} >&3 2>&1

# ---------------------------------------------------------------- modules and disk
# /modules.order lists the .ko files of /lib/modules in load order (empty or
# absent when the drivers are built in)
if [ -s /modules.order ]; then
    while read -r m; do
        [ -n "$m" ] && insmod "/lib/modules/$m" >&3 2>&1
    done < /modules.order
fi

n=0
while [ $n -lt 30 ]; do
    if [ -z "$DISK" ]; then
        if [ -b /dev/vda ]; then DISK=virtio
        elif [ -b /dev/nvme0n1 ]; then DISK=nvme
        fi
    fi
    case "$DISK" in
        virtio) [ -b /dev/vda ] && break ;;
        nvme) [ -b /dev/nvme0n1 ] && break ;;
    esac
    sleep 1
    n=$((n + 1))
done
sleep 1
case "$DISK" in
    nvme) BLK=nvme0n1 ;;
    *) BLK=vda ;;
esac
DEV=/dev/$BLK
Q=/sys/block/$BLK/queue

section DMESG_GREP_1
dmesg | grep -i -E "swiotlb|software IO TLB|area num|DMA" >&3
section DEBUGFS_1
ls -la $DBG >&3 2>&1
debugfs_values

if [ "$DISK" = nvme ]; then
    section NVME
    {
        for q in max_hw_sectors_kb max_sectors_kb max_segment_size max_segments \
                 dma_alignment virt_boundary_mask nr_requests read_ahead_kb \
                 logical_block_size physical_block_size; do
            echo "$BLK.queue.$q=$(cat $Q/$q)"
        done
        ls /sys/block/$BLK/mq
        for d in /sys/bus/pci/devices/*; do
            drv=""
            [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
            echo "${d##*/} vendor=$(cat $d/vendor) device=$(cat $d/device) class=$(cat $d/class) driver=$drv"
        done
        echo "nvme dmesg:"
        dmesg | grep -i nvme
    } >&3 2>&1
else
    section VIRTIO
    {
        for d in /sys/bus/virtio/devices/*; do
            echo "${d##*/} device=$(cat $d/device) features=$(cat $d/features)"
        done
        for q in max_segment_size max_segments max_hw_sectors_kb max_sectors_kb \
                 nr_requests read_ahead_kb logical_block_size; do
            echo "$BLK.queue.$q=$(cat $Q/$q)"
        done
        ls /sys/block/$BLK/mq
    } >&3 2>&1
fi

# ---------------------------------------------------------------- the pool, from kernel memory
# Offsets into io_tlb_default_mem; they belong to the kernels recorded in data/
# (worked out from their headers) and must be checked for any other build.
M=@io_tlb_default_mem
if [ -z "$LAYOUT" ]; then
    case "$REL" in
        6.1.*) LAYOUT=6.1 ;;
        *) if [ -e $DBG/io_tlb_transient_nslabs ]; then LAYOUT=6.12dyn; else LAYOUT=6.12; fi ;;
    esac
fi
case "$LAYOUT" in
    6.1)
        POOLARGS="start=$M:x64 end=$M+8:x64 nslabs=$M+24:u64 used=$M+32:u64 force_bounce=$M+49:u8 nareas=$M+52:u32 area_nslabs=$M+56:u32" ;;
    6.12)
        POOLARGS="start=$M:x64 end=$M+8:x64 nslabs=$M+24:u64 nareas=$M+36:u32 area_nslabs=$M+40:u32 mem_nslabs=$M+64:u64 force_bounce=$M+80:u8 total_used=$M+88:u64 used_hiwater=$M+96:u64" ;;
    6.12dyn)
        # struct io_tlb_pool is 104 bytes here: node at 64, rcu at 80, transient at 96
        MEMARGS="mem_nslabs=$M+104:u64 force_bounce=$M+120:u8 can_grow=$M+122:u8 phys_limit=$M+128:x64 total_used=$M+192:u64 used_hiwater=$M+200:u64 transient_nslabs=$M+208:u64"
        POOLARGS="start=$M:x64 end=$M+8:x64 nslabs=$M+24:u64 late_alloc=$M+32:u8 nareas=$M+36:u32 area_nslabs=$M+40:u32 transient=$M+96:u8 $MEMARGS" ;;
    *)
        POOLARGS="" ;;
esac

# follow io_tlb_default_mem.pools (a list_head at +144 whose entries are the
# pools' node members, at +64 in struct io_tlb_pool) for eight steps
pool_walk() {
    args=$MEMARGS
    ptr="$M+144"
    for k in 1 2 3 4 5 6 7 8; do
        args="$args n$k=$ptr:x64 start$k=-64($ptr):x64 nslabs$k=-40($ptr):u64 nareas$k=-28($ptr):u32 area_nslabs$k=-24($ptr):u32 transient$k=+32($ptr):u8"
        ptr="+0($ptr)"
    done
    grep -E " (io_tlb_default_mem|default_nslabs|default_nareas)$" /proc/kallsyms
    probe_once rkpool/walk "$args"
}

section POOL_PROBE
{
    grep -E " (io_tlb_default_mem|__x64_sys_newuname)$" /proc/kallsyms
    [ -n "$POOLARGS" ] && probe_once rkpool/pool "$POOLARGS"
    if [ "$LAYOUT" = 6.12dyn ]; then
        echo "POOL_WALK_1:"
        pool_walk
    fi
} >&3 2>&1

# ---------------------------------------------------------------- tracing
has_sym() { grep -q " $1\$" /proc/kallsyms; }

section TRACE_SETUP
{
    echo 0 > "$TR/tracing_on"
    echo "$BUFKB" > "$TR/buffer_size_kb"
    echo 0 > "$TR/options/overwrite"
    echo > "$TR/trace"
    echo 1 > "$TR/events/swiotlb/swiotlb_bounced/enable"
    if [ "$KPROBES" = 1 ]; then
        if has_sym __swiotlb_tbl_unmap_single; then
            # 6.12: swiotlb_tbl_map_single(dev, orig, size, alloc_align_mask, dir, attrs)
            kprobe 'p:rk/map swiotlb_tbl_map_single orig=$arg2:x64 size=$arg3:u64 align_mask=$arg4:x32 dir=$arg5:s32 attrs=$arg6:x64'
            kprobe 'r:rk/map_ret swiotlb_tbl_map_single tlb=$retval:x64'
            kprobe 'p:rk/unmap __swiotlb_tbl_unmap_single tlb=$arg2:x64 size=$arg3:u64 dir=$arg4:s32'
        else
            # 6.1: swiotlb_tbl_map_single(dev, orig, size, alloc_size, alloc_align_mask, dir, attrs)
            kprobe 'p:rk/map swiotlb_tbl_map_single orig=$arg2:x64 size=$arg3:u64 alloc_size=$arg4:u64 align_mask=$arg5:x32 dir=$arg6:s32'
            kprobe 'r:rk/map_ret swiotlb_tbl_map_single tlb=$retval:x64'
            kprobe 'p:rk/unmap swiotlb_tbl_unmap_single tlb=$arg2:x64 size=$arg3:u64 dir=$arg4:s32'
        fi
        # pool growth, transient pools and pool freeing (CONFIG_SWIOTLB_DYNAMIC=y)
        ret='pool=$retval:x64 start=+0($retval):x64 end=+8($retval):x64 nslabs=+24($retval):u64 late_alloc=+32($retval):u8 nareas=+36($retval):u32 area_nslabs=+40($retval):u32'
        if has_sym swiotlb_alloc_pool.isra.0; then
            # gcc dropped the dev argument: (minslabs, nslabs, nareas, phys_limit, gfp)
            kprobe 'p:rk/apool swiotlb_alloc_pool.isra.0 minslabs=$arg1:u64 nslabs=$arg2:u64 nareas=$arg3:u32 phys_limit=$arg4:x64 gfp=$arg5:x32'
            kprobe "r:rk/apool_ret swiotlb_alloc_pool.isra.0 $ret"
        elif has_sym swiotlb_alloc_pool; then
            kprobe 'p:rk/apool swiotlb_alloc_pool dev=$arg1:x64 minslabs=$arg2:u64 nslabs=$arg3:u64 nareas=$arg4:u32 phys_limit=$arg5:x64 gfp=$arg6:x32'
            kprobe "r:rk/apool_ret swiotlb_alloc_pool $ret"
        fi
        if has_sym swiotlb_dyn_alloc; then
            kprobe "p:rk/dynalloc swiotlb_dyn_alloc work=\$arg1:x64 mem_nslabs=$M+104:u64"
            kprobe "r:rk/dynalloc_ret swiotlb_dyn_alloc mem_nslabs=$M+104:u64"
        fi
        if has_sym swiotlb_dyn_free; then
            # the argument is &pool->rcu, 80 bytes into struct io_tlb_pool
            kprobe 'p:rk/dynfree swiotlb_dyn_free rcu=$arg1:x64 start=-80($arg1):x64 nslabs=-56($arg1):u64 nareas=-44($arg1):u32 transient=+16($arg1):u8'
        fi
        echo 1 > "$TR/events/rk/enable"
    fi
    echo "kallsyms:"
    grep -E " (swiotlb_tbl_map_single|__swiotlb_tbl_unmap_single|swiotlb_tbl_unmap_single|swiotlb_find_slots|swiotlb_release_slots|swiotlb_map|swiotlb_bounce|io_tlb_default_mem)$" /proc/kallsyms
    if [ "$LAYOUT" = 6.12dyn ]; then
        echo "kallsyms (dynamic):"
        grep -E " (swiotlb_alloc_pool|swiotlb_dyn_alloc|swiotlb_dyn_free|swiotlb_alloc_tlb|add_mem_pool|swiotlb_del_transient|swiotlb_del_pool|swiotlb_search_area|swiotlb_search_pool_area|default_nslabs|default_nareas)(\.[a-z]+\.[0-9]+)?$" /proc/kallsyms
    fi
    echo "kprobe_events:"
    cat "$TR/kprobe_events"
    echo "enabled events:"
    cat "$TR/set_event"
    echo "buffer_size_kb=$(cat "$TR/buffer_size_kb") overwrite=$(cat "$TR/options/overwrite")"
    [ -n "$MAXKB" ] && echo "$MAXKB" > $Q/max_sectors_kb
    echo "$BLK.queue.max_sectors_kb=$(cat $Q/max_sectors_kb)"
    echo "workload_timeout_s=$WLTIMEOUT dump_trace=$DUMP"
} >&3 2>&1

section DEBUGFS_BEFORE_WORKLOAD
debugfs_values
# writing 0 resets the high-water mark (6.12), so it covers the workload only
echo 0 > $DBG/io_tlb_used_hiwater 2>/dev/null
counters

# ---------------------------------------------------------------- the workload
mark() { echo "$1" > "$TR/trace_marker"; echo "--- $1" >&3; }

# step LABEL COMMAND...: marker, command, counters
step() {
    label=$1
    shift
    echo "$label" > "$TR/trace_marker"
    echo "--- $label: $*" >&3
    "$@" >&3 2>&1
    counters
}

section WORKLOAD
echo 1 > "$TR/tracing_on"
(
    # the direct steps all use the first blocks of the disk (offset 0)
    for bs in 4k 64k 256k 1M; do
        step "direct write bs=$bs count=4" dd if=/dev/zero of=$DEV bs=$bs count=4 seek=0 oflag=direct
        step "direct read bs=$bs count=4" dd if=$DEV of=/dev/null bs=$bs count=4 skip=0 iflag=direct
    done
    step "buffered read bs=1M count=2 skip=8" dd if=$DEV of=/dev/null bs=1M count=2 skip=8
    step "buffered write bs=1M count=2 seek=12 conv=fsync" dd if=/dev/zero of=$DEV bs=1M count=2 seek=12 conv=fsync
    mark "parallel 4x direct write bs=1M count=4"
    for k in 1 2 3 4; do
        dd if=/dev/zero of=$DEV bs=1M count=4 seek=$((16 + 4 * k)) oflag=direct 2>/dev/null &
    done
    wait
    counters
    mark "parallel 4x direct read bs=1M count=4"
    for k in 1 2 3 4; do
        dd if=$DEV of=/dev/null bs=1M count=4 skip=$((16 + 4 * k)) iflag=direct 2>/dev/null &
    done
    wait
    counters
    echo "workload end" > "$TR/trace_marker"
    touch /tmp/workload.done
) &

n=0
while [ ! -e /tmp/workload.done ] && [ $n -lt "$WLTIMEOUT" ]; do
    sleep 1
    n=$((n + 1))
done
echo 0 > "$TR/tracing_on"
if [ -e /tmp/workload.done ]; then
    echo "WORKLOAD_COMPLETED after ~${n}s" >&3
else
    echo "WORKLOAD_TIMEOUT after ${WLTIMEOUT}s (I/O still pending: dd processes stuck)" >&3
    ps >&3 2>&1
fi

# ---------------------------------------------------------------- results
section DEBUGFS_AFTER_WORKLOAD
debugfs_values

section TRACE_STATS
cat "$TR"/per_cpu/cpu*/stats 2>/dev/null | grep -E "entries|overrun|dropped" >&3

count() { grep -c -e "$1" "$TR/trace"; }
section TRACE_COUNTS
{
    echo "swiotlb_bounced=$(count ' swiotlb_bounced: ')"
    echo "map=$(count ' map: ')"
    echo "map_ret=$(count ' map_ret: ')"
    echo "map_ret_fail=$(count 'tlb=0xffffffffffffffff')"
    echo "unmap=$(count ' unmap: ')"
    echo "markers=$(count 'tracing_mark_write')"
    if [ "$LAYOUT" = 6.12dyn ]; then
        echo "apool=$(count ' apool: ')"
        echo "apool_ret=$(count ' apool_ret: ')"
        echo "apool_ret_null=$(count ' apool_ret: .*pool=0x0 ')"
        echo "apool_worker=$(count ' apool: .*gfp=0xcc0')"
        echo "apool_transient=$(count ' apool: .*gfp=0x2800')"
        echo "dynalloc=$(count ' dynalloc: ')"
        echo "dynalloc_ret=$(count ' dynalloc_ret: ')"
        echo "dynfree=$(count ' dynfree: ')"
        echo "dynfree_transient=$(count ' dynfree: .*transient=1')"
    fi
    echo "total_lines=$(wc -l < "$TR/trace")"
} >&3 2>&1

if [ "$DUMP" = 1 ]; then
    section TRACE
    cat "$TR/trace" >&3
fi

if [ "$LAYOUT" = 6.12dyn ]; then
    section POOL_WALK_2
    {
        echo 0 > "$TR/events/enable"
        echo > "$TR/trace"
        pool_walk
    } >&3 2>&1
    section DEBUGFS_END
    debugfs_values
fi

section DMESG_GREP_2
dmesg | grep -i -E "swiotlb|software IO TLB|area num|DMA" >&3
section DMESG_FULL
dmesg >&3
section END
sleep 2
poweroff -f
