#!/usr/bin/env bash
# Installs everything podwarden's tests need on a fresh Debian 12 machine.
# Idempotent: safe to run on a machine that already has them.
set -euo pipefail

need_apt=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# prometheus: promtool for the chart's alert tests (deploy/helm).
# containernetworking-plugins and apparmor (apparmor_parser) go into the
# node test's guest (internal/nodetest), not onto this host's network.
# e2fsprogs: mke2fs -d makes the pressure scenarios' guest disk (internal/vmtest).
# qemu-system-arm (qemu-system-aarch64) boots the arm64 guest and kmod's
# depmod indexes its kernel's modules (below); installed on every run, as
# CI restores /var/cache/podwarden but not the packages.
for p in qemu-system-x86 qemu-system-arm kmod linux-image-amd64 busybox-static procps python3 docker-registry runc hyperfine time prometheus containernetworking-plugins apparmor e2fsprogs; do
	have "$p" || need_apt+=("$p")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${need_apt[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# The kernel package is only needed as a qemu guest kernel: skip the
	# initramfs and bootloader hooks that would try to make this host boot it.
	apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# earlyoom, the anchor of the pressure scenarios (internal/vmtest), runs
# only inside the qemu guest: its Debian package is downloaded and
# extracted, never installed, since an installed earlyoom starts killing
# processes on this machine.
EARLYOOM_DIR=${EARLYOOM_DIR:-/var/cache/podwarden/earlyoom}
if [ ! -x "$EARLYOOM_DIR/usr/bin/earlyoom" ]; then
	mkdir -p "$(dirname "$EARLYOOM_DIR")"
	(
		flock 9
		if [ ! -x "$EARLYOOM_DIR/usr/bin/earlyoom" ]; then
			tmp=$(mktemp -d)
			chmod 755 "$tmp" # apt's download user must be able to write here
			(cd "$tmp" && apt-get download -q earlyoom)
			rm -rf "$EARLYOOM_DIR.new"
			dpkg-deb -x "$tmp"/earlyoom_*.deb "$EARLYOOM_DIR.new"
			rm -rf "$EARLYOOM_DIR" && mv "$EARLYOOM_DIR.new" "$EARLYOOM_DIR"
			rm -rf "$tmp"
		fi
	) 9>"$(dirname "$EARLYOOM_DIR")/.build.lock"
fi

# The arm64 guest (internal/vmtest TestArm64*, docs/vmtest.md "arm64"):
# Debian's arm64 kernel with its modules and busybox-static:arm64, under
# qemu-system-aarch64. Downloaded and extracted like earlyoom, never
# installed: they are for the guest, not this amd64 host. modules.dep is
# not in the package (its postinst makes it), so depmod makes it here.
ARM64_DIR=${ARM64_DIR:-/var/cache/podwarden/arm64}
if [ ! -f "$ARM64_DIR/ready" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to set up the arm64 guest in $ARM64_DIR" >&2
		exit 1
	fi
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
		apt-get update -q
	fi
	mkdir -p "$(dirname "$ARM64_DIR")"
	(
		flock 9
		if [ ! -f "$ARM64_DIR/ready" ]; then
			# The kernel the metapackage points at now: the same Debian
			# release as linux-image-amd64's on this host.
			kpkg=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ :]*\).*/\1/p' | head -n1)
			if [ -z "$kpkg" ]; then
				echo "install-deps: cannot tell which kernel linux-image-arm64:arm64 depends on" >&2
				exit 1
			fi
			tmp=$(mktemp -d)
			chmod 755 "$tmp" # apt's download user must be able to write here
			(cd "$tmp" && apt-get download -q "$kpkg:arm64" busybox-static:arm64)
			rm -rf "$ARM64_DIR.new"
			for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$ARM64_DIR.new"; done
			rel=${kpkg#linux-image-}
			# Debian 12 keeps modules under /lib (bookworm is not merged /usr in packages).
			moddir=$ARM64_DIR.new/lib/modules/$rel
			[ -d "$moddir" ] || moddir=$ARM64_DIR.new/usr/lib/modules/$rel
			depmod -b "${moddir%/lib/modules/$rel}" "$rel"
			touch "$ARM64_DIR.new/ready"
			rm -rf "$ARM64_DIR" && mv "$ARM64_DIR.new" "$ARM64_DIR"
			rm -rf "$tmp"
		fi
	) 9>"$(dirname "$ARM64_DIR")/.build.lock"
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		echo "install-deps: add /usr/local/go/bin to PATH" >&2
	else
		echo "install-deps: Go 1.26 is required (https://go.dev/dl)" >&2
		exit 1
	fi
fi
