#!/usr/bin/env bash
# Installs what building and testing Breakglass needs, when it is missing (Debian/Ubuntu).
# Safe to run again: it only installs packages that are absent.
set -euo pipefail

need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in build-essential pkg-config libdbus-1-dev postgresql dbus gnome-keyring libsecret-tools; do
  have_pkg "$p" || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${need_pkgs[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo is not installed; install a Rust toolchain (rustup, stable >= 1.85) first" >&2
  exit 1
fi
