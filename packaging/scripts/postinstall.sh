#!/bin/sh
# imchannel postinstall (deb: postinst configure [OLD-VERSION] | abort-*;
# rpm: %post 1 on install, 2 or more on upgrade).
#
# First install: the state directory, then enable and start the service.
# Upgrade: restart a running service onto the new binary; it migrates the
# database at start, writing a .bak copy first. The config and the database
# are never touched here.
set -e

upgrade=no
case "$1" in
configure) [ -n "$2" ] && upgrade=yes ;;
abort-upgrade | abort-remove | abort-deconfigure) upgrade=yes ;;
[0-9]*) [ "$1" -ge 2 ] && upgrade=yes ;;
esac

install -d -o imchannel -g imchannel -m 0750 /var/lib/imchannel

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
	if [ "$upgrade" = yes ]; then
		# rpm restarts from the old package's %postun, after its files
		# are gone; dpkg has no later step, so it restarts here.
		case "$1" in
		[0-9]*) ;;
		*)
			if systemctl is-active --quiet imchannel; then
				systemctl restart imchannel
				echo "imchannel: restarted onto the new binary (it migrates the database at start, after a .bak copy)"
			fi
			;;
		esac
	else
		systemctl enable imchannel >/dev/null 2>&1 || true
		if systemctl start imchannel; then
			echo "imchannel: installed and started (systemctl status imchannel)."
		else
			echo "imchannel: installed and enabled, but did not start: journalctl -u imchannel" >&2
		fi
		echo "imchannel: edit /etc/imchannel/imchannel.toml (credentials, provider), then systemctl restart imchannel."
		echo "imchannel: hourly checked backups go to /var/lib/imchannel/backups; copy backups/imchannel-latest.db with your own backup tool."
	fi
elif [ "$upgrade" = yes ]; then
	echo "imchannel: systemd is not running here: restart imchannel yourself to run the new binary."
else
	echo "imchannel: systemd is not running here; the service was not started."
	echo "imchannel: run it as the user imchannel: imchannel serve --config /etc/imchannel/imchannel.toml (the file must be readable by that user)"
fi
exit 0
