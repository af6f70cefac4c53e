#!/bin/sh
# imchannel preinstall (deb: preinst install|upgrade; rpm: %pre 1|2).
# Creates the system user and group the service runs as, once.
set -e

if ! getent group imchannel >/dev/null 2>&1; then
	groupadd --system imchannel
fi
if ! getent passwd imchannel >/dev/null 2>&1; then
	shell=/usr/sbin/nologin
	[ -x "$shell" ] || shell=/sbin/nologin
	useradd --system --gid imchannel --home-dir /var/lib/imchannel --no-create-home \
		--shell "$shell" --comment "imchannel service" imchannel
	echo "imchannel: created the system user imchannel"
fi
exit 0
