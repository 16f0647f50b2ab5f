# Installs what a fresh Debian 12 machine is missing. Sourced by scripts/start and scripts/test.
# Usage: ensure_deps <debian packages...>
ensure_deps() {
  local missing=() pkg bin
  for pkg in "$@"; do
    if [ "$pkg" = libnginx-mod-rtmp ]; then
      [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || missing+=("$pkg")
      continue
    fi
    case "$pkg" in
      nats-server) bin=nats-server ;;
      ffmpeg) bin=ffmpeg ;;
      chromium) bin=chromium ;;
      prometheus) bin=promtool ;;
      nginx-light) bin=nginx ;;
      webkit2gtk-driver) bin=WebKitWebDriver ;;
      xvfb) bin=xvfb-run ;;
      srt-tools) bin=srt-live-transmit ;;
      gstreamer1.0-*) bin="" ;; # plugins, not commands: asked of dpkg
      *) bin="$pkg" ;;
    esac
    if [ -n "$bin" ]; then
      command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
    else
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing ${missing[*]} (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
      || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
  # npm ci when node_modules is missing or older than the lock file.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "Installing npm packages (npm ci)..." >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
  fi
}
