#!/usr/bin/env bash
# Removes, from the build directory every clone shares, the test, bench and binary executables
# that newer builds of the same name replaced (a change of dependencies or features gives a new
# hash and leaves the old file behind; 66 GB of them filled the disk in session 15). The six
# newest of each name are kept (several crates have a test of the same name, e.g. e2e, and the
# work tree and CI's clone each build their own); cargo rebuilds anything it still needs.
set -euo pipefail
source "$(dirname "$0")/env.sh"
for deps in "$CARGO_TARGET_DIR"/debug/deps "$CARGO_TARGET_DIR"/release/deps; do
  [ -d "$deps" ] || continue
  find "$deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %f\n' \
    | sort -rn \
    | awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (++seen[name] > 6) print $2 }' \
    | while read -r old; do rm -f "$deps/$old"; done
done
