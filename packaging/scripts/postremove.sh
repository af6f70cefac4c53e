#!/bin/sh
# imchannel postremove (deb: postrm remove|purge|upgrade|abort-*|disappear;
# rpm: %postun 0 on removal, 1 on upgrade).
#
# Removal keeps the data: the database, its backups and the config stay
# until a purge (deb only), which deletes them and says so.
set -e

state=/var/lib/imchannel

case "$1" in
remove | 0)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl daemon-reload || true
	fi
	if [ "$1" = 0 ]; then
		echo "imchannel: removed. Kept: $state (database and backups) and /etc/imchannel; delete them by hand when no longer needed."
	else
		echo "imchannel: removed. Kept: $state (database and backups) and /etc/imchannel. 'dpkg --purge imchannel' deletes them."
	fi
	;;
1)
	# rpm upgrade: the old package's files are gone, the new ones in place.
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl daemon-reload || true
		if systemctl is-active --quiet imchannel; then
			systemctl restart imchannel
			echo "imchannel: restarted onto the new binary (it migrates the database at start, after a .bak copy)"
		fi
	fi
	;;
purge)
	if [ -d "$state" ]; then
		echo "imchannel: purge: deleting $state: the database and every backup in it."
		rm -rf "$state"
	fi
	if [ -d /etc/imchannel ]; then
		echo "imchannel: purge: deleting /etc/imchannel."
		rm -rf /etc/imchannel
	fi
	if getent passwd imchannel >/dev/null 2>&1; then
		userdel imchannel >/dev/null 2>&1 || true
		echo "imchannel: purge: deleted the system user imchannel."
	fi
	if getent group imchannel >/dev/null 2>&1; then
		groupdel imchannel >/dev/null 2>&1 || true
	fi
	echo "imchannel: purge: backups kept outside $state (your own tool's copies of imchannel-latest.db) are not touched."
	;;
esac
exit 0
