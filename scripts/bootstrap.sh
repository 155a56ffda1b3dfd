#!/usr/bin/env bash
# Source me:  source scripts/bootstrap.sh
# Brings the pinned toolchain from the npm registry alone (the machine ships Node 20; pnpm 11,
# vitest 5 and changesets 3 need Node >= 22), puts it on PATH and installs the workspace.
# Idempotent: a second run on the same machine reuses ~/.cache/toolchain and the pnpm store.
set -euo pipefail
NODE_VERSION=24.21.0
PNPM_VERSION=11.28.11
TOOLS="${TOOLCHAIN_DIR:-$HOME/.cache/toolchain}"
arch=$(uname -m); case "$arch" in x86_64) arch=x64;; aarch64) arch=arm64;; esac
os=$(uname -s | tr '[:upper:]' '[:lower:]')
NODE_PKG="node-$os-$arch"
NODE_BIN="$TOOLS/node-$NODE_VERSION/node_modules/$NODE_PKG/bin"
if [ "$("$NODE_BIN/node" -v 2>/dev/null || true)" != "v$NODE_VERSION" ]; then
  npm install --prefix "$TOOLS/node-$NODE_VERSION" --no-save --no-package-lock --no-audit --no-fund "$NODE_PKG@$NODE_VERSION" >&2
fi
export PATH="$NODE_BIN:$PATH"
PNPM_BIN="$TOOLS/pnpm-$PNPM_VERSION/bin"
if [ "$("$PNPM_BIN/pnpm" -v 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  npm install -g --prefix "$TOOLS/pnpm-$PNPM_VERSION" --no-audit --no-fund "pnpm@$PNPM_VERSION" >&2
fi
export PATH="$PNPM_BIN:$PATH"
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
export TURBO_CACHE_DIR="${TURBO_CACHE_DIR:-$HOME/.cache/turbo}"
echo "node $(node -v), pnpm $(pnpm -v)" >&2
if [ "${BOOTSTRAP_SKIP_INSTALL:-0}" != 1 ]; then
  pnpm install >&2            # with CI=true pnpm 11 makes this --frozen-lockfile
fi
set +euo pipefail
