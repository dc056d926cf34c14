#!/usr/bin/env bash
# Builds the image's binary: proxy-injector, release, statically linked (glibc, crt-static),
# from a clean copy of the repository, i.e. only the files git tracks (as they are in the work
# tree). A build that needs an untracked or ignored file fails here, as it would on a fresh
# clone. The copy is target/clean-src (file times kept, so an unchanged tree is not rebuilt), the
# build directory target/static (reused across runs). Result: target/image/proxy-injector.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
triple="x86_64-unknown-linux-gnu"
src="$repo/target/clean-src"
out="$repo/target/image"
started=$SECONDS

command -v git >/dev/null || { echo "static-build: git is needed to list the tracked files" >&2; exit 1; }
echo "static-build: copying the files git tracks into ${src#"$repo"/}"
rm -rf "$src"
mkdir -p "$src" "$out"
# Files deleted in the work tree but still tracked are skipped (with a warning from tar).
git -C "$repo" ls-files -z --cached \
  | tar -C "$repo" --null -T - --ignore-failed-read -cf - \
  | tar -C "$src" -xf -

echo "static-build: cargo build --release --locked --target $triple (crt-static) in ${src#"$repo"/}"
(
  cd "$src"
  RUSTFLAGS="-C target-feature=+crt-static" \
  CARGO_PROFILE_RELEASE_DEBUG=0 \
  CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$triple" -p proxy-injector --bin proxy-injector \
      --target-dir "$repo/target/static"
) || {
  echo "static-build: FAILED. If the error names a missing file: is it tracked by git (git status)?" >&2
  exit 1
}

bin="$repo/target/static/$triple/release/proxy-injector"
# ldd says "not a dynamic executable" (static) or "statically linked" (static-pie).
linkage="$(ldd "$bin" 2>&1 || true)"
if ! grep -Eq 'not a dynamic executable|statically linked' <<<"$linkage"; then
  echo "static-build: $bin is dynamically linked:" >&2
  echo "$linkage" >&2
  exit 1
fi
if command -v file >/dev/null; then
  file "$bin" | grep -Eq 'statically linked|static-pie linked' || {
    echo "static-build: file(1) does not call $bin static: $(file -b "$bin")" >&2
    exit 1
  }
fi
cp "$bin" "$out/proxy-injector"
echo "static-build: ${out#"$repo"/}/proxy-injector, $(stat -c %s "$out/proxy-injector") bytes, ldd: $(echo $linkage) ($((SECONDS - started))s)"
