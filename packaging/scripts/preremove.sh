#!/bin/sh
# imchannel preremove (deb: prerm remove|upgrade|deconfigure|failed-upgrade;
# rpm: %preun 0 on removal, 1 on upgrade).
# Removal stops and disables the service; an upgrade leaves it running
# until the new binary is in place (then it is restarted).
set -e

case "$1" in
remove | deconfigure | 0)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now imchannel >/dev/null 2>&1 || true
		echo "imchannel: service stopped and disabled"
	fi
	;;
esac
exit 0
