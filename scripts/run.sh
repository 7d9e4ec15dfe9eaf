#!/usr/bin/env bash
# Builds and starts Breakglass: the guided first run (init, sample policy, status), then the status
# view on later runs. Keys go to the OS keyring; without a desktop session (no D-Bus) a private
# keyring is started and unlocked with a passphrase you type.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/breakglass/target}"
cargo build --release --quiet -p breakglass-cli
bin="$CARGO_TARGET_DIR/release/breakglass"

if [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  exec "$bin" quickstart "$@"
fi
if [ ! -t 0 ]; then
  echo "No desktop session and no terminal to ask for a keyring passphrase: keeping keys in 0600 files." >&2
  exec "$bin" quickstart --system-keys file "$@"
fi
read -r -s -p "Passphrase for your Breakglass keyring (created on first run): " pass; echo
export BREAKGLASS_KEYRING_PASS="$pass"
exec dbus-run-session -- bash -c '
  eval "$(printf %s "$BREAKGLASS_KEYRING_PASS" | gnome-keyring-daemon --unlock --components=secrets)"
  unset BREAKGLASS_KEYRING_PASS
  export GNOME_KEYRING_CONTROL
  "$0" quickstart "$@"
' "$bin" "$@"
