#!/usr/bin/env bash
# Installs the pinned agent CLIs (tools/agents/package.json) into .agents/ with npm.
# Skips the install when the lockfile has not changed since the last one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.agents"
mkdir -p "$dest"
cp "$root/tools/agents/package.json" "$dest/package.json"
[ -f "$root/tools/agents/package-lock.json" ] && cp "$root/tools/agents/package-lock.json" "$dest/package-lock.json"
stamp="$dest/.installed"
want=$( (cat "$dest/package.json"; cat "$dest/package-lock.json" 2>/dev/null || true) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dest/node_modules" ]; then
  echo "agents: up to date in $dest" >&2
  exit 0
fi
cd "$dest"
# Install scripts are needed: Claude Code's postinstall links its native binary.
npm install --no-audit --no-fund --loglevel=error >&2
[ -f "$root/tools/agents/package-lock.json" ] || cp package-lock.json "$root/tools/agents/package-lock.json"
(cat package.json; cat package-lock.json) | sha256sum | cut -d' ' -f1 > "$stamp"
echo "agents: installed into $dest" >&2
