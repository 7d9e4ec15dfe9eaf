# Sourced by the other scripts: where cargo builds (outside the clone, so clones share one build
# cache), and the Node that bootstrap.sh fetched when the system's is too old for the UI's tools.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/breakglass/target}"
if [ -x "$HOME/.cache/breakglass/node/node_modules/.bin/node" ]; then
  export PATH="$HOME/.cache/breakglass/node/node_modules/.bin:$PATH"
fi
