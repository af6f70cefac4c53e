#!/usr/bin/env bash
# The package, installed for real: builds the .deb, installs it with dpkg,
# verifies the unit, runs the packaged binary with the packaged config (an
# override file points the paths at a temp dir and makes the backup
# interval 2s), posts a message, waits for a scheduled backup, checks that
# backups/imchannel-latest.db passes check and holds the message, restores
# it, upgrades the package over itself (edited config and data kept),
# removes it (data kept) and purges it (data gone). The upgrade and the
# removal run with a systemd stand-in (below), so the maintainer scripts'
# systemd branches run too: the running service is restarted onto the new
# binary, and removal stops it. Where Debian's rpm is installed, the .rpm
# is then installed, upgraded and removed the same way.
#
# Needs root and dpkg (it installs a package on this machine); .ci/run runs
# it after the tests. Elsewhere it says why it skips, except under CI=true,
# where a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
start=$(date +%s)

skip() {
	if [ "${CI:-}" = true ]; then
		echo "package-test: FAIL: $*" >&2
		exit 1
	fi
	echo "package-test: skipped: $*" >&2
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (it installs a package)"
command -v dpkg >/dev/null || skip "needs dpkg"
command -v curl >/dev/null || skip "needs curl"

fail() {
	echo "package-test: FAIL: $*" >&2
	[ -f "${tmp:-/nonexistent}/serve.log" ] && sed 's/^/  serve: /' "$tmp/serve.log" >&2
	exit 1
}
step() { echo "package-test: $*"; }

tmp=$(mktemp -d /tmp/imchannel-package-test.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -x "$tmp/svc/bin/systemctl" ] && "$tmp/svc/bin/systemctl" stop imchannel
	dpkg -s imchannel >/dev/null 2>&1 && dpkg --purge imchannel >/dev/null 2>&1
	rpm_leftover
	rm -rf "$tmp"
}
# An rpm-installed imchannel (a run cut short in its rpm part) goes with
# what rpm -e keeps.
rpm_leftover() {
	if command -v rpm >/dev/null && rpm -q imchannel >/dev/null 2>&1; then
		rpm -e --nodeps imchannel >/dev/null 2>&1
		rm -rf /var/lib/imchannel /etc/imchannel
		userdel imchannel >/dev/null 2>&1
		groupdel imchannel >/dev/null 2>&1
	fi
	return 0
}
trap cleanup EXIT

# A leftover of an interrupted run goes first.
if dpkg -s imchannel >/dev/null 2>&1; then
	dpkg --purge imchannel >/dev/null
fi
rpm_leftover

# The systemd stand-in. CI has no running systemd, so the scripts' systemd
# branches (start on install, restart on upgrade, stop on removal) would
# never run. with_systemd runs a command in a private mount namespace in
# which /run/systemd/system exists (what the scripts test) and systemctl
# is the script below, which runs the service as the unit does (as the
# imchannel user, the packaged config copied for it, an override file with
# a free port) and logs what it was asked. The namespace changes nothing
# outside it; without the right to make one, those branches are skipped.
svc=$tmp/svc
mkdir -p "$svc/bin"
printf 'addr = "127.0.0.1:0"\n' >"$svc/override.toml"
cat >"$svc/bin/systemctl" <<SH
#!/bin/sh
# systemctl stand-in (scripts/package-test.sh) for the unit imchannel.
svc=$svc
SH
cat >>"$svc/bin/systemctl" <<'SH'
echo "systemctl $*" >>"$svc/systemctl.log"
running() {
	p=$(cat "$svc/pid" 2>/dev/null) || return 1
	# A zombie (no init reaping in a container) counts as gone.
	[ -n "$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && kill -0 "$p" 2>/dev/null
}
stop() {
	if running; then
		kill "$p"
		while running; do sleep 0.1; done
	fi
	rm -f "$svc/pid"
}
start() {
	running && return 0
	install -o imchannel -g imchannel -m 0400 /etc/imchannel/imchannel.toml "$svc/imchannel.toml"
	chown imchannel:imchannel "$svc/override.toml"
	setpriv --reuid="$(id -u imchannel)" --regid="$(id -g imchannel)" --clear-groups -- \
		/usr/bin/imchannel serve --config "$svc/imchannel.toml" --config "$svc/override.toml" \
		</dev/null >>"$svc/serve.log" 2>&1 &
	echo $! >"$svc/pid"
}
case "$1" in
daemon-reload | enable) ;;
is-active) running ;;
start) start ;;
stop) stop ;;
restart) stop && start ;;
disable) [ "$2" != --now ] || stop ;;
*)
	echo "systemctl stand-in: $* is not supported" >&2
	exit 1
	;;
esac
SH
chmod 0755 "$svc/bin/systemctl"
if unshare --mount sh -c 'mount -t tmpfs imchannel-test /run' 2>/dev/null; then
	with_systemd() {
		unshare --mount sh -c 'mount -t tmpfs -o mode=0755 imchannel-test /run && mkdir -p /run/systemd/system &&
			PATH="$0:$PATH" exec "$@"' "$svc/bin" "$@"
	}
else
	with_systemd() { return 99; }
fi
# svc_listening N: the stand-in's service has logged its Nth start.
svc_listening() { [ "$(cat "$svc/serve.log" 2>/dev/null | grep -c 'msg=listening')" -ge "$1" ]; }
# alive PID: a process that runs (a zombie nobody reaped yet is gone).
alive() { local st; st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
svc_addr() { sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$svc/serve.log" | sed -n "$1p"; }
svc_version() { sed -n 's/.*msg=listening .*version=\([^ ]*\).*/\1/p' "$svc/serve.log" | sed -n "$1p"; }
until_ok() { # seconds, description, command...
	local until=$(($(date +%s) + $1)) what=$2
	shift 2
	until "$@"; do
		[ "$(date +%s)" -lt "$until" ] || fail "waited in vain for $what"
		sleep 0.2
	done
}

step "building the .deb"
deb=$(scripts/package.sh deb)
[ -f "$deb" ] || fail "scripts/package.sh printed no .deb"

step "dpkg -i $deb"
dpkg -i "$deb" | sed 's/^/  /'
[ -x /usr/bin/imchannel ] || fail "no /usr/bin/imchannel"
/usr/bin/imchannel version
getent passwd imchannel >/dev/null || fail "no system user imchannel"
[ "$(stat -c '%U:%G %a' /etc/imchannel/imchannel.toml)" = "root:root 600" ] ||
	fail "/etc/imchannel/imchannel.toml is $(stat -c '%U:%G %a' /etc/imchannel/imchannel.toml), want root:root 600"
dpkg-query -W -f='${Conffiles}\n' imchannel | grep -q '^ /etc/imchannel/imchannel.toml ' ||
	fail "/etc/imchannel/imchannel.toml is not a conffile"
[ "$(stat -c '%U:%G %a' /var/lib/imchannel)" = "imchannel:imchannel 750" ] ||
	fail "/var/lib/imchannel is $(stat -c '%U:%G %a' /var/lib/imchannel)"
unit=/usr/lib/systemd/system/imchannel.service
[ -f "$unit" ] || fail "no $unit"
if command -v systemd-analyze >/dev/null; then
	step "systemd-analyze verify $unit"
	systemd-analyze verify "$unit" || fail "systemd-analyze verify"
else
	step "systemd-analyze not installed: unit not verified"
fi

# The packaged config, as systemd hands it to the service (a private copy
# its user can read), and an override file laid over it.
step "serving with the packaged config and an override file (paths in $tmp, backups every 2s)"
chown imchannel:imchannel "$tmp"
chmod 0750 "$tmp"
install -o imchannel -g imchannel -m 0400 /etc/imchannel/imchannel.toml "$tmp/imchannel.toml"
cat >"$tmp/override.toml" <<TOML
addr = "127.0.0.1:0"
db = "$tmp/imchannel.db"
[backup]
dir = "$tmp/backups"
interval = "2s"
TOML
chown imchannel:imchannel "$tmp/override.toml"
# setpriv execs the binary itself (runuser would stay in between and turn
# SIGTERM into a kill), so $pid is serve's own.
setpriv --reuid="$(id -u imchannel)" --regid="$(id -g imchannel)" --clear-groups -- /usr/bin/imchannel serve --config "$tmp/imchannel.toml" --config "$tmp/override.toml" \
	2>"$tmp/serve.log" &
pid=$!

wait_for() { # seconds, description, command...
	local until=$(($(date +%s) + $1)) what=$2
	shift 2
	until "$@"; do
		[ "$(date +%s)" -lt "$until" ] || fail "waited in vain for $what"
		kill -0 "$pid" 2>/dev/null || fail "serve exited while waiting for $what"
		sleep 0.2
	done
}
listening() { grep -qs 'msg=listening' "$tmp/serve.log"; }
wait_for 30 "serve to listen" listening
addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$tmp/serve.log" | head -1)
curl -fsS "http://$addr/healthz" >/dev/null || fail "/healthz"

token="pkgtest-$(date +%s)-$$"
post=$(curl -fsS -H 'Content-Type: application/json' "http://$addr/imchannel/message" --data-binary @- <<JSON
{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP",
"receivedAt":"2024-03-01T09:00:00.000+0000","messageId":"$token","message":{"type":"TEXT","text":"hello $token"}}]}
JSON
) || fail "posting the message"
step "posted message $token: $post"

latest="$tmp/backups/imchannel-latest.db"
holds_message() { [ -f "$latest" ] && grep -qa "hello $token" "$latest"; }
wait_for 30 "a scheduled backup holding the message" holds_message
step "scheduled backup: $(ls "$tmp/backups" | tr '\n' ' ')"
[ "$(stat -c %h "$latest")" -ge 2 ] || fail "$latest is not a hard link to a dated backup"
/usr/bin/imchannel check --db "$latest" || fail "check on $latest"
kill "$pid"
wait "$pid" || fail "serve's exit after SIGTERM"
pid=
grep -q 'stopped cleanly' "$tmp/serve.log" || fail "serve did not stop cleanly"

# The message, read back through the API of a service restored from the
# one file an operator's backup tool copies.
step "restore $latest, serve it, read the message back"
/usr/bin/imchannel restore "$latest" --db "$tmp/imchannel.db" | sed 's/^/  /'
ls "$tmp"/imchannel.db.pre-restore-* >/dev/null || fail "no .pre-restore file kept"
[ "$(stat -c %U "$tmp/imchannel.db")" = imchannel ] || fail "the restored file is not the service user's"
cmp -s "$latest" "$tmp/imchannel.db" || fail "the restored file differs from the backup"
/usr/bin/imchannel serve --addr 127.0.0.1:0 --db "$tmp/imchannel.db" 2>"$tmp/serve.log" &
pid=$!
wait_for 30 "the restored service to listen" listening
addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$tmp/serve.log" | head -1)
got=$(curl -fsS "http://$addr/api/v1/messages?externalId=$token") || fail "reading the message back"
case "$got" in *"hello $token"*) ;; *) fail "the restored file does not hold the message: $got" ;; esac
kill "$pid"
wait "$pid" || fail "restored serve's exit"
pid=

# Data in the state directory, an edited config: an upgrade keeps both,
# and restarts the running service onto the new binary.
install -o imchannel -g imchannel -m 0600 "$latest" /var/lib/imchannel/imchannel.db
echo "# edited by package-test" >>/etc/imchannel/imchannel.toml
version1=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
deb2=$(IMCHANNEL_VERSION="$version1.1" scripts/package.sh deb)
restarted=no
if with_systemd true; then
	step "the service runs (systemd stand-in); upgrading over it (a newer version)"
	"$svc/bin/systemctl" start imchannel
	until_ok 30 "the service to listen" svc_listening 1
	case "$(svc_version 1)" in "$version1+"*) ;; *) fail "the service runs $(svc_version 1), want $version1" ;; esac
	old=$(cat "$svc/pid")
	with_systemd dpkg -i "$deb2" | sed 's/^/  /'
	grep -q '^systemctl restart imchannel$' "$svc/systemctl.log" || fail "the upgrade did not restart the service: $(cat "$svc/systemctl.log")"
	! alive "$old" || fail "the old service ($old) still runs"
	until_ok 30 "the restarted service to listen" svc_listening 2
	case "$(svc_version 2)" in "$version1.1+"*) ;; *) fail "restarted onto $(svc_version 2), want $version1.1" ;; esac
	got=$(curl -fsS "http://$(svc_addr 2)/api/v1/messages?externalId=$token") || fail "reading the message after the upgrade"
	case "$got" in *"hello $token"*) ;; *) fail "the upgraded service does not hold the message: $got" ;; esac
	restarted=yes
else
	step "upgrading over itself (a newer version); no mount namespace here: the restart is not exercised"
	dpkg -i "$deb2" | sed 's/^/  /'
fi
grep -q '^# edited by package-test' /etc/imchannel/imchannel.toml || fail "the upgrade replaced the edited config"
grep -qa "hello $token" /var/lib/imchannel/imchannel.db || fail "the upgrade lost the database"

step "dpkg -r: the service stops, the data stays"
if [ "$restarted" = yes ]; then
	with_systemd dpkg -r imchannel | sed 's/^/  /'
	grep -q '^systemctl disable --now imchannel$' "$svc/systemctl.log" || fail "removal did not stop the service"
	! "$svc/bin/systemctl" is-active imchannel || fail "the service survived removal"
else
	dpkg -r imchannel | sed 's/^/  /'
fi
[ ! -e /usr/bin/imchannel ] || fail "the binary survived removal"
[ -f /var/lib/imchannel/imchannel.db ] || fail "removal deleted the database"
[ -f /etc/imchannel/imchannel.toml ] || fail "removal deleted the config"

step "dpkg --purge: the data goes, and it says so"
dpkg --purge imchannel >"$tmp/purge.log" 2>&1 || fail "dpkg --purge: $(cat "$tmp/purge.log")"
sed 's/^/  /' "$tmp/purge.log"
grep -q 'purge: deleting /var/lib/imchannel' "$tmp/purge.log" || fail "purge did not say it deletes the data"
[ ! -e /var/lib/imchannel ] || fail "/var/lib/imchannel survived the purge"
[ ! -e /etc/imchannel ] || fail "/etc/imchannel survived the purge"
! getent passwd imchannel >/dev/null || fail "the user imchannel survived the purge"

# The .rpm, where Debian's rpm is installed: install, upgrade over the
# running service, remove. --nodeps: rpm's own database knows none of
# Debian's packages; --force-debian: Debian's rpm refuses to install
# without it. Scriptlets run with rpm's own PATH, so the stand-in's
# directory is put first in it.
if command -v rpm >/dev/null; then
	step "building the .rpm (two versions, for the upgrade)"
	rpm1=$(IMCHANNEL_VERSION="$version1.2" scripts/package.sh rpm)
	rpm2=$(IMCHANNEL_VERSION="$version1.3" scripts/package.sh rpm)
	rpmopts=(--nodeps)
	case "$(rpm --help 2>&1 || true)" in *--force-debian*) rpmopts+=(--force-debian) ;; esac
	step "rpm -i $rpm1"
	rpm -i "${rpmopts[@]}" "$rpm1" | sed 's/^/  /'
	/usr/bin/imchannel version | grep -q "$version1.2+" || fail "rpm: /usr/bin/imchannel is $(/usr/bin/imchannel version)"
	getent passwd imchannel >/dev/null || fail "rpm: no system user imchannel"
	[ "$(stat -c '%U:%G %a' /etc/imchannel/imchannel.toml)" = "root:root 600" ] ||
		fail "rpm: /etc/imchannel/imchannel.toml is $(stat -c '%U:%G %a' /etc/imchannel/imchannel.toml)"
	rpm -qc imchannel | grep -qx /etc/imchannel/imchannel.toml || fail "rpm: the config is not a %config file"
	[ "$(stat -c '%U:%G %a' /var/lib/imchannel)" = "imchannel:imchannel 750" ] ||
		fail "rpm: /var/lib/imchannel is $(stat -c '%U:%G %a' /var/lib/imchannel)"
	[ -f /usr/lib/systemd/system/imchannel.service ] || fail "rpm: no unit"
	install -o imchannel -g imchannel -m 0600 "$latest" /var/lib/imchannel/imchannel.db
	echo "# edited by package-test" >>/etc/imchannel/imchannel.toml
	if [ "$restarted" = yes ]; then
		: >"$svc/serve.log"
		: >"$svc/systemctl.log"
		sdopts=(--define "_install_script_path $svc/bin:/sbin:/bin:/usr/sbin:/usr/bin")
		step "rpm -U over the running service (systemd stand-in)"
		"$svc/bin/systemctl" start imchannel
		until_ok 30 "the service to listen" svc_listening 1
		with_systemd rpm -U "${rpmopts[@]}" "${sdopts[@]}" "$rpm2" | sed 's/^/  /'
		grep -q '^systemctl restart imchannel$' "$svc/systemctl.log" || fail "rpm -U did not restart the service: $(cat "$svc/systemctl.log")"
		until_ok 30 "the restarted service to listen" svc_listening 2
		case "$(svc_version 2)" in "$version1.3+"*) ;; *) fail "rpm: restarted onto $(svc_version 2), want $version1.3" ;; esac
		got=$(curl -fsS "http://$(svc_addr 2)/api/v1/messages?externalId=$token") || fail "rpm: reading the message after the upgrade"
		case "$got" in *"hello $token"*) ;; *) fail "rpm: the upgraded service does not hold the message: $got" ;; esac
		step "rpm -e: the service stops, the data stays"
		with_systemd rpm -e "${rpmopts[@]}" "${sdopts[@]}" imchannel | sed 's/^/  /'
		grep -q '^systemctl disable --now imchannel$' "$svc/systemctl.log" || fail "rpm -e did not stop the service"
	else
		step "rpm -U (no mount namespace here: the restart is not exercised)"
		rpm -U "${rpmopts[@]}" "$rpm2" | sed 's/^/  /'
		/usr/bin/imchannel version | grep -q "$version1.3+" || fail "rpm -U: /usr/bin/imchannel is $(/usr/bin/imchannel version)"
		step "rpm -e: the data stays"
		rpm -e "${rpmopts[@]}" imchannel | sed 's/^/  /'
	fi
	grep -q '^# edited by package-test' /etc/imchannel/imchannel.toml* || fail "rpm lost the edited config"
	[ ! -e /usr/bin/imchannel ] || fail "rpm: the binary survived removal"
	grep -qa "hello $token" /var/lib/imchannel/imchannel.db || fail "rpm -e deleted the database"
	rm -rf /var/lib/imchannel /etc/imchannel
	userdel imchannel >/dev/null 2>&1 || true
	groupdel imchannel >/dev/null 2>&1 || true
elif [ "${CI:-}" = true ]; then
	fail "rpm is not installed (.ci/run installs Debian's rpm)"
else
	step "rpm not installed: the .rpm is not tried"
fi

echo "package-test: ok ($(($(date +%s) - start))s)"
