#!/usr/bin/env bash
# The package, installed for real: builds the .deb, installs it with dpkg,
# verifies the unit, runs the packaged binary with the packaged config (an
# override file points the paths at a temp dir and makes the backup
# interval 2s), posts a message, waits for a scheduled backup, checks that
# backups/imchannel-latest.db passes check and holds the message, restores
# it, upgrades the package over itself (edited config and data kept),
# removes it (data kept) and purges it (data gone).
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
	[ -n "$pid2" ] && kill "$pid2" 2>/dev/null && wait "$pid2" 2>/dev/null
	dpkg -s imchannel >/dev/null 2>&1 && dpkg --purge imchannel >/dev/null 2>&1
	rm -rf "$tmp"
}
pid2=
trap cleanup EXIT

# A leftover of an interrupted run goes first.
if dpkg -s imchannel >/dev/null 2>&1; then
	dpkg --purge imchannel >/dev/null
fi

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

# Data in the state directory, an edited config: an upgrade keeps both.
install -o imchannel -g imchannel -m 0600 "$latest" /var/lib/imchannel/imchannel.db
echo "# edited by package-test" >>/etc/imchannel/imchannel.toml
step "upgrading over itself (a newer version)"
deb2=$(IMCHANNEL_VERSION="$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//').1" scripts/package.sh deb)
dpkg -i "$deb2" | sed 's/^/  /'
grep -q '^# edited by package-test' /etc/imchannel/imchannel.toml || fail "the upgrade replaced the edited config"
grep -qa "hello $token" /var/lib/imchannel/imchannel.db || fail "the upgrade lost the database"

step "dpkg -r: the data stays"
dpkg -r imchannel | sed 's/^/  /'
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

echo "package-test: ok ($(($(date +%s) - start))s)"
