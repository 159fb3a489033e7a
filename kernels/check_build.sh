#!/usr/bin/env bash
# Rebuilds the wasm kernels into a temporary folder and fails if the bytes (or the generated
# base64 modules) differ from the committed ones. CI runs this: `bash kernels/check_build.sh`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash "$here/build.sh" "$tmp" >/dev/null 2>"$tmp/build.log" || { cat "$tmp/build.log" >&2; exit 1; }
status=0
for f in wasm/relaxed.wasm wasm/simd.wasm wasm_relaxed.ts wasm_simd.ts; do
  if ! cmp -s "$tmp/$f" "$here/$f"; then
    echo "kernels/$f differs from a fresh build: run 'deno task build:kernels' and commit" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "kernels: committed wasm matches a fresh build ($(sha256sum "$here"/wasm/*.wasm | cut -c1-12 | tr '\n' ' '))"
exit $status
