#!/bin/sh
# /init of the slabbench VM initramfs (run by busybox sh as PID 1).
#
# It loads the virtio/9p modules packed next to it, mounts the host's root
# read-only at /host, mounts the pseudo-filesystems and the writable shares
# over it, and runs the job the host wrote (kernel parameter slabbench.job=DIR)
# chrooted into /host, so every host path means the same in the guest.
# Command output goes to the virtio-serial ports "stdout" and "stderr";
# "start" and "exit N" go to the port "status"; this script's own complaints
# go to the console, which the host shows when something fails.

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
	echo "slabbench-vm: $*"
	poweroff -f
	sleep 60
}

mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r module; do
	insmod "/modules/$module" || fail "insmod $module failed"
done </modules/order

job=
for word in $(cat /proc/cmdline); do
	case "$word" in
	slabbench.job=*) job="${word#slabbench.job=}" ;;
	esac
done
[ -n "$job" ] || fail "no slabbench.job= on the kernel command line"

ninep="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$ninep,ro,cache=loose" hostroot /host || fail "mounting the host root (9p) failed"
[ -f "/host$job/job.sh" ] || fail "job $job/job.sh not visible in the guest"

mount -t proc proc /host/proc || fail "mount /proc"
mount -t sysfs sysfs /host/sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /host/dev || fail "mount /dev"
mkdir -p /dev/shm /dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t debugfs debugfs /host/sys/kernel/debug || fail "mount debugfs"
mount -t tracefs tracefs /host/sys/kernel/tracing || fail "mount tracefs"
mount -t bpf bpf /host/sys/fs/bpf || fail "mount bpffs"
mount -t tmpfs tmpfs /host/run || fail "mount /run"

# Writable shares, parents before children: "TAG PATH" per line.
while read -r tag path; do
	mount -t 9p -o "$ninep,cache=none" "$tag" "/host$path" || fail "mounting writable share $path failed"
done <"/host$job/shares"

# virtio-serial ports show up asynchronously after the host names them.
waited=0
while :; do
	port_stdout= port_stderr= port_status=
	for port in /sys/class/virtio-ports/*; do
		[ -f "$port/name" ] || continue
		case "$(cat "$port/name")" in
		stdout) port_stdout="/dev/${port##*/}" ;;
		stderr) port_stderr="/dev/${port##*/}" ;;
		status) port_status="/dev/${port##*/}" ;;
		esac
	done
	[ -c "$port_stdout" ] && [ -c "$port_stderr" ] && [ -c "$port_status" ] && break
	waited=$((waited + 1))
	[ "$waited" -lt 400 ] || fail "virtio-serial ports stdout, stderr, status did not appear"
	sleep 0.05
done

echo start >"$port_status"
chroot /host /bin/sh "$job/job.sh" </dev/null >"$port_stdout" 2>"$port_stderr"
rc=$?
sync
echo "exit $rc" >"$port_status"
poweroff -f
sleep 60
