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
for p in qemu-system-x86 linux-image-amd64 busybox-static procps python3 docker-registry runc hyperfine time prometheus containernetworking-plugins apparmor e2fsprogs; do
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

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		echo "install-deps: add /usr/local/go/bin to PATH" >&2
	else
		echo "install-deps: Go 1.26 is required (https://go.dev/dl)" >&2
		exit 1
	fi
fi
