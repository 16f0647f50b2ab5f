# The mediasoup worker (C++), found or built offline. Sourced by scripts/start and scripts/test.
#
# npm's own install of mediasoup downloads a prebuilt worker from GitHub, or builds one with meson
# subprojects that download their sources: neither works without the open internet. So, unless a worker
# is already there, this builds it once from the npm tarball against Debian 12's own libraries, into a
# project-local cache keyed by the version, and points MEDIASOUP_WORKER_BIN at it (npm's postinstall then
# neither downloads nor builds, and mediasoup runs that binary). A second run finds it at once.
#
# What differs from upstream's build (scripts/mediasoup-worker/):
# - every meson subproject is a wrap that downloads: replaced by stubs over Debian's libraries (pkg-config);
# - libsrtp: the worker speaks to versatica's libsrtp 3, Debian has libsrtp 2.5: srtp-compat.h bridges the
#   calls (cryptex and MKI, which the worker does not use, are lost);
# - DtlsTransport.cpp, one line: Debian's OpenSSL has kernel TLS, and the worker's BIO callback answered 1 to
#   every ctrl, so libssl believed KTLS was on, never allocated its write buffer and the worker crashed on
#   the first DTLS ClientHello. Upstream ships the same line from 3.32;
# - meson >= 1.0 (Debian has 1.0.1; upstream asks 1.1, and builds with 1.0.1), liburing off (Debian's 2.3 is
#   too old; the worker falls back to libuv);
# - scripts/mediasoup-worker/*.patch, the relay's own: whep-consumers.patch lets a consumer send
#   the header extension ids its viewer offered (WHEP: the viewer offers first; mediasoup upstream issue
#   #1126), and sends mediasoup's bandwidth probes as padding on the viewer's RTX stream (they went to an
#   SSRC only mediasoup-client announces). Without it a browser gets no transport-wide congestion control,
#   so no bandwidth estimate, and an estimate that fell never climbs back.
#
# The cache key is the version, the machine, and a hash of scripts/mediasoup-worker/ (a changed patch
# builds again); node's findMediasoupWorker computes the same key.
#
# Usage: ensure_mediasoup_worker   (exports MEDIASOUP_WORKER_BIN)
# Env:   MEDIASOUP_WORKER_BIN   a worker to use as it is (skips everything)
#        RELAY_MEDIASOUP_CACHE  where built workers are kept (default .cache/mediasoup-worker in the project)
#        RELAY_MEDIASOUP_BUILD_DIR  build there and keep it (a rebuild after a patch change is then incremental)

_ms_log() { echo "[mediasoup-worker] $*" >&2; }

ensure_mediasoup_worker() {
  if [ -n "${MEDIASOUP_WORKER_BIN:-}" ] && [ -x "$MEDIASOUP_WORKER_BIN" ]; then return 0; fi
  local version root cache bin
  root=$(pwd)
  version=$(node -p "require('./package.json').dependencies.mediasoup")
  cache=${RELAY_MEDIASOUP_CACHE:-$root/.cache/mediasoup-worker}
  bin="$cache/$version-$(uname -m)-$(_ms_recipe_hash)/mediasoup-worker"
  if [ ! -x "$bin" ]; then
    _ms_log "no worker for mediasoup $version: building it with Debian's libraries (about 5 minutes on 2 cores, once)"
    _ms_build "$version" "$bin"
  fi
  _ms_runtime_libs
  export MEDIASOUP_WORKER_BIN="$bin"
}

# The recipe's fingerprint: sha256 over `sha256sum` lines of scripts/mediasoup-worker/ in byte order.
_ms_recipe_hash() {
  (LC_ALL=C find scripts/mediasoup-worker -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
}

# Libraries the (dynamically linked) worker needs where it runs.
_ms_runtime_libs() {
  local pkg missing=()
  for pkg in libssl3 libuv1 libsrtp2-1 libusrsctp2 libabsl20220623; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] || _ms_apt "${missing[@]}"
}

_ms_apt() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

_ms_build() {
  local version=$1 out=$2 here work w srtp t0=$SECONDS
  here=$(pwd)/scripts/mediasoup-worker
  _ms_apt meson ninja-build g++ gcc pkg-config patch libssl-dev libuv1-dev libsrtp2-dev libusrsctp-dev libabsl-dev \
    libflatbuffers-dev flatbuffers-compiler
  # flatc must generate code for exactly the flatbuffers headers installed.
  local flatc_v headers_v
  flatc_v=$(flatc --version | awk '{print $3}')
  headers_v=$(pkg-config --modversion flatbuffers)
  [ "$flatc_v" = "$headers_v" ] || { _ms_log "flatc $flatc_v does not match libflatbuffers-dev $headers_v"; return 1; }

  local keep=${RELAY_MEDIASOUP_BUILD_DIR:-}
  if [ -n "$keep" ] && [ -d "$keep/package/worker/build" ]; then
    work=$keep
    w="$work/package/worker"
    _ms_log "rebuilding in $w"
    _ms_compile "$w" "$work" "$out" "$t0"
    return
  fi
  work=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/mediasoup-worker-$version.XXXXXX")}
  mkdir -p "$work"
  rm -rf "$work/package"
  (cd "$work" && npm pack --silent "mediasoup@$version" >/dev/null)
  tar xzf "$work"/mediasoup-*.tgz -C "$work"
  w="$work/package/worker"

  # Stub subprojects over Debian's libraries; no wrap is left, so meson can never download.
  srtp=$(basename "$(ls "$w"/subprojects/libsrtp*.wrap)" .wrap) # libsrtp3 (3.15+), libsrtp2 before
  rm -f "$w"/subprojects/*.wrap
  cp -r "$here"/stubs/{openssl,libuv,usrsctp,abseil-cpp,flatbuffers,catch2} "$w/subprojects/"
  cp -r "$here/stubs/libsrtp" "$w/subprojects/$srtp"
  sed -i "s/@NAME@/$srtp/g" "$w/subprojects/$srtp/meson.build"
  mkdir -p "$w/subprojects/$srtp/compat"
  cp "$here/srtp-compat.h" "$w/subprojects/$srtp/compat/srtp.h"

  # The DTLS fix (see the top of this file); a version that already has it is left alone.
  local dtls="$w/src/RTC/DtlsTransport.cpp"
  if grep -q 'long resultOfcallback = (operationType == BIO_CB_RETURN) ?' "$dtls"; then
    sed -i 's/long resultOfcallback = (operationType == BIO_CB_RETURN) ?/long resultOfcallback = ((operationType \& BIO_CB_RETURN) != 0) ?/' "$dtls"
  fi
  grep -q '(operationType & BIO_CB_RETURN) != 0' "$dtls" || { _ms_log "the DTLS fix did not apply to $version"; return 1; }
  sed -i "s/meson_version: '>= 1.1.0'/meson_version: '>= 1.0.0'/" "$w/meson.build"
  local p
  for p in "$here"/*.patch; do
    patch -s -p1 -d "$w" <"$p" || { _ms_log "$(basename "$p") does not apply to $version"; return 1; }
  done

  (
    cd "$w"
    meson setup build --buildtype release -Db_ndebug=true --wrap-mode=nodownload -Dms_disable_liburing=true >"$work/meson.log" 2>&1
    # The flatbuffers headers first: the libwebrtc target does not depend on them (upstream's tasks.py does the same).
    meson compile -C build flatbuffers-generator >>"$work/meson.log" 2>&1
  ) || { _ms_log "build setup failed; its log: $work/meson.log"; tail -30 "$work/meson.log" >&2; return 1; }
  _ms_compile "$w" "$work" "$out" "$t0"
  [ -n "$keep" ] || rm -rf "$work"
}

_ms_compile() {
  local w=$1 work=$2 out=$3 t0=$4
  (cd "$w" && meson compile -C build -j "$(nproc)" mediasoup-worker >>"$work/meson.log" 2>&1) \
    || { _ms_log "build failed; its log: $work/meson.log"; tail -30 "$work/meson.log" >&2; return 1; }
  mkdir -p "$(dirname "$out")"
  strip -o "$out.tmp" "$w/build/mediasoup-worker"
  mv "$out.tmp" "$out" # atomic: a concurrent or interrupted run never sees half a binary
  _ms_log "built $out in $((SECONDS - t0)) s"
}
