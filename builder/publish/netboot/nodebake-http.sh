# nodebake network root (boot=nodebake-http)		-*- shell-script -*-
# shellcheck shell=sh
#
# Sourced by the initramfs-tools init after /scripts/local and /scripts/nfs;
# its mountroot replaces theirs. It brings the network up (ip=), downloads
# the read-only root image named by nodebake.root= into a tmpfs under /run,
# checks it against nodebake.root.sha256= and mounts it through a loop
# device on ${rootmnt}. /run, the tmpfs with it, moves into the real root,
# so the loop device's backing file stays valid after switching root.
#
# Every failure stops the boot (fail closed): a node never comes up on a
# root image it could not verify.
#
# Kernel command line:
#   nodebake.root=URL            http:// or https:// URL of root.squashfs
#   nodebake.root.sha256=HEX     its SHA-256
#   nodebake.root.timeout=SECS   give up after this long (default 120)

nodebake_fail()
{
	panic "nodebake-http: $*: cannot boot without a verified root image"
	# The rescue shell returned: stop rather than go on without a root.
	echo "nodebake-http: halting"
	halt -f
	exit 1
}

nodebake_mountroot()
{
	local x url sha timeout dir img dev
	timeout=120
	# shellcheck disable=SC2013
	for x in $(cat /proc/cmdline); do
		case $x in
		nodebake.root=*)
			url=${x#nodebake.root=}
			;;
		nodebake.root.sha256=*)
			sha=${x#nodebake.root.sha256=}
			;;
		nodebake.root.timeout=*)
			timeout=${x#nodebake.root.timeout=}
			;;
		esac
	done
	[ -n "${url}" ] || nodebake_fail "no nodebake.root= on the kernel command line"
	[ -n "${sha}" ] || nodebake_fail "no nodebake.root.sha256= on the kernel command line"
	case ${timeout} in
	'' | *[!0-9]*)
		nodebake_fail "nodebake.root.timeout=${timeout} is not a number of seconds"
		;;
	esac

	/sbin/modprobe loop || nodebake_fail "cannot load the loop module"
	/sbin/modprobe squashfs || nodebake_fail "cannot load the squashfs module"
	/sbin/modprobe af_packet 2>/dev/null
	wait_for_udev 10

	[ "${IP}" = none ] || [ "${IP}" = off ] && nodebake_fail "ip=${IP}: the root image needs the network"
	configure_networking

	dir=/run/nodebake-root
	img=${dir}/root.squashfs
	mkdir -p "${dir}" || nodebake_fail "cannot create ${dir}"
	# Its own tmpfs: the image must not count against /run's size limit.
	mount -t tmpfs -o nodev,nosuid,noexec,mode=0700 tmpfs "${dir}" || nodebake_fail "cannot mount a tmpfs on ${dir}"

	log_begin_msg "nodebake-http: fetching ${url}"
	/usr/lib/nodebake/nodebake-firstboot netroot --url "${url}" --sha256 "${sha}" --out "${img}" --timeout "${timeout}s" ||
		nodebake_fail "fetching ${url} failed"
	log_end_msg

	# Nothing may change the verified image from here on.
	mount -t tmpfs -o remount,ro tmpfs "${dir}" || nodebake_fail "cannot make ${dir} read-only"
	dev=$(losetup -f) || nodebake_fail "no free loop device"
	losetup "${dev}" "${img}" || nodebake_fail "cannot attach ${img} to ${dev}"
	mount -r -t squashfs "${dev}" "${rootmnt?}" || nodebake_fail "cannot mount ${dev} (${img}) as squashfs on ${rootmnt}"
	echo "nodebake-http: root ${url} (sha256 ${sha}) mounted read-only from ${dev}"
}

mountroot()
{
	nodebake_mountroot
}

mount_top()
{
	:
}

mount_premount()
{
	:
}

mount_bottom()
{
	:
}
