#!/usr/bin/env bash
# Builds and starts Breakglass. On a desktop (a display): the desktop app, whose first run walks
# through the data directory, the identity provider, the policy and sign-in. Without a display:
# the command line's guided first run (init, sample policy, status). Keys go to the OS keyring;
# without a desktop session (no D-Bus) a private keyring is started and unlocked with a
# passphrase you type.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
source scripts/env.sh

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  scripts/ui.sh
  echo "Building the desktop app (the first build takes several minutes)…" >&2
  cargo build --release --quiet -p breakglass-app
  exec "$CARGO_TARGET_DIR/release/breakglass-app" "$@"
fi
echo "No display here: starting the command-line first run instead of the desktop app." >&2
cargo build --release --quiet -p breakglass-cli
bin="$CARGO_TARGET_DIR/release/breakglass"
hint() {
  echo
  echo "The breakglass binary is $bin"
  echo "(put it on your PATH, or install it with: cargo install --path crates/cli)"
}

if [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  "$bin" quickstart "$@"
  hint
  exit 0
fi
if [ ! -t 0 ]; then
  echo "No desktop session and no terminal to ask for a keyring passphrase: keeping keys in 0600 files." >&2
  "$bin" quickstart --system-keys file "$@"
  hint
  exit 0
fi
# gnome-keyring puts its control socket under ~/.cache (or $XDG_RUNTIME_DIR); without it the
# unlocked daemon exits and D-Bus would activate a locked one instead.
mkdir -p "$HOME/.cache" && chmod 700 "$HOME/.cache"
read -r -s -p "Passphrase for your Breakglass keyring (created on first run): " pass; echo
export BREAKGLASS_KEYRING_PASS="$pass"
# The private keyring lives as long as this session: stay in a shell inside it, with
# `breakglass` on PATH, so the commands quickstart suggests work as shown.
exec dbus-run-session -- bash -c '
  eval "$(printf %s "$BREAKGLASS_KEYRING_PASS" | gnome-keyring-daemon --unlock --components=secrets)"
  unset BREAKGLASS_KEYRING_PASS
  export GNOME_KEYRING_CONTROL PATH="$(dirname "$0"):$PATH"
  "$0" quickstart "$@" || exit
  echo
  echo "You are in a shell with your Breakglass keyring unlocked; type exit to leave."
  exec "${SHELL:-bash}" -i
' "$bin" "$@"
