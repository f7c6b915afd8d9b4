#!/usr/bin/env bash
# Builds slabrelay.ko against Debian unstable's current kernel and unpacks
# that kernel for the VM, with Debian packages only. The kernel's headers
# and kbuild tools need unstable's compiler and C library, which Debian 12
# lacks, so the module is built in a minimal unstable root (debootstrap),
# cached under $SLABBENCH_CACHE (default /var/cache/slabbench):
#
#   sid-root/                  the unstable root: headers, gcc, make
#   kernel-<release>/lib/modules/<release>/{vmlinuz,modules.dep,...}
#                              the kernel image and modules for the VM
#   kernel-<release>/slabrelay.ko
#                              the module built against that kernel's headers
#   sid.env                    KVER=, VMLINUZ= and KMOD= of the above
#
# make kmod-sid runs it; make test-sid reads sid.env.
# Needs root (debootstrap, chroot). SID_MIRROR overrides the mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${SLABBENCH_CACHE:-/var/cache/slabbench}
root=$cache/sid-root
log() { echo "sid-kernel: $*" >&2; }

# The Debian mirror this machine's apt sources already name (the first
# that is not a security archive), in deb822 or one-line form.
apt_mirror() {
	{
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}'
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; break}}'
	} | grep -v -- '-security' | head -n 1 || true
}
mirror=${SID_MIRROR:-$(apt_mirror)}
if [[ -z $mirror ]]; then
	echo "sid-kernel: no Debian mirror in /etc/apt/sources.list{,.d}: set SID_MIRROR to one" >&2
	exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "sid-kernel: needs root (debootstrap and chroot): run as root" >&2
	exit 1
fi
if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
mkdir -p "$cache"
if [[ ! -x $root/usr/bin/apt-get ]]; then
	log "debootstrap --variant=minbase sid $root (about a minute)"
	rm -rf "$root.tmp"
	debootstrap --variant=minbase sid "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
	mv "$root.tmp" "$root"
fi

# Unstable's Release file can be past its Valid-Until on a mirror snapshot;
# apt refuses it without this option.
apt_sid() { chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false "$@"; }
log "updating the unstable root and installing linux-headers-amd64"
apt_sid update -qq
apt_sid install -y -qq --no-install-recommends linux-headers-amd64 make >/dev/null

headers=$(chroot "$root" dpkg-query -W -f='${Depends}\n' linux-headers-amd64 | grep -o 'linux-headers-[^ ,]*-amd64' | head -n 1)
release=${headers#linux-headers-}
[[ -n $release ]] || { echo "sid-kernel: cannot tell the kernel release from linux-headers-amd64" >&2; exit 1; }

kdir=$cache/kernel-$release
vmlinuz=$kdir/lib/modules/$release/vmlinuz
if [[ ! -f $vmlinuz || ! -f $kdir/lib/modules/$release/modules.dep ]]; then
	log "unpacking linux-image-$release for the VM"
	rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/debs"
	# apt-get download writes to the working directory: /tmp/debs in the root.
	chroot "$root" sh -c "rm -rf /tmp/debs && mkdir -p /tmp/debs && cd /tmp/debs &&
		apt-get -o Acquire::Check-Valid-Until=false download -qq linux-binary-$release linux-modules-$release linux-base-$release" 2>/dev/null
	mv "$root"/tmp/debs/*.deb "$kdir.tmp/debs/"
	for deb in "$kdir.tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$kdir.tmp"; done
	rm -rf "$kdir.tmp/debs"
	# usr-merged packages put the modules under usr/lib
	if [[ ! -d $kdir.tmp/lib/modules/$release && -d $kdir.tmp/usr/lib/modules/$release ]]; then
		mkdir -p "$kdir.tmp/lib/modules"
		mv "$kdir.tmp/usr/lib/modules/$release" "$kdir.tmp/lib/modules/"
	fi
	# older packages install the image as boot/vmlinuz-<release>
	if [[ -f $kdir.tmp/boot/vmlinuz-$release ]]; then
		mv "$kdir.tmp/boot/vmlinuz-$release" "$kdir.tmp/lib/modules/$release/vmlinuz"
	fi
	[[ -f $kdir.tmp/lib/modules/$release/vmlinuz ]] ||
		{ echo "sid-kernel: no vmlinuz in linux-binary-$release" >&2; exit 1; }
	depmod -b "$kdir.tmp" "$release"
	rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
fi

log "building slabrelay.ko against linux-headers-$release"
rm -rf "$root/build/slabrelay" && mkdir -p "$root/build"
cp -r kmod "$root/build/slabrelay"
rm -f "$root"/build/slabrelay/slabrelay/*.{o,ko,mod,mod.c,cmd} "$root"/build/slabrelay/slabrelay/{Module.symvers,modules.order}
# objtool reads /proc while building.
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" make -s -C "/usr/src/linux-headers-$release" M=/build/slabrelay/slabrelay modules W=1 >"$cache/kmod-$release.log" 2>&1 ||
	{ cat "$cache/kmod-$release.log" >&2; exit 1; }
if grep -qi "warning" "$cache/kmod-$release.log"; then
	cat "$cache/kmod-$release.log" >&2
	echo "sid-kernel: the module built with warnings against $release" >&2
	exit 1
fi
cp "$root/build/slabrelay/slabrelay/slabrelay.ko" "$kdir/slabrelay.ko"
printf 'KVER=%s\nVMLINUZ=%s\nKMOD=%s\n' "$release" "$vmlinuz" "$kdir/slabrelay.ko" >"$cache/sid.env"
log "built $kdir/slabrelay.ko; the VM boots $vmlinuz ($cache/sid.env)"
