#!/usr/bin/env bash
# Test-bed setup for stagectl: installs the offline validators and, on request, a running Docker
# engine on a Debian 12 machine without systemd.
#
#   scripts/testbed-setup.sh validators   promtool, amtool, nginx, shellcheck, openssl, debootstrap,
#                                          docker CLI + Compose v2 (from Debian 13's archive)
#   scripts/testbed-setup.sh docker       all of the above, plus a running dockerd and the
#                                          PostgreSQL and Redis server binaries (demo app tests)
#
# Idempotent: when everything is already there it only checks, in about a second.
# Must run as root (apt-get, dpkg, dockerd). Never starts nginx or Prometheus daemons.
set -euo pipefail

readonly MIRROR="${STAGECTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly STATE_DIR="${STAGECTL_TESTBED_STATE:-/var/lib/stagectl-testbed}"
readonly TRIXIE_DIR="$STATE_DIR/apt-trixie"
readonly DOCKERD_LOG="${STAGECTL_DOCKERD_LOG:-/var/log/dockerd.log}"
readonly DOCKERD_WAIT="${STAGECTL_DOCKERD_WAIT:-60}"
# Compose v2 >= 2.18 is needed by community.docker.docker_compose_v2.
readonly COMPOSE_MIN_MINOR=18

# command -> Debian package that provides it
readonly -a TOOLS=(
  "promtool:prometheus"
  "amtool:prometheus-alertmanager"
  "nginx:nginx"
  "shellcheck:shellcheck"
  "openssl:openssl"
  "debootstrap:debootstrap"
  "dockerd:docker.io"
  "sslscan:sslscan"
)

# Server binaries the demo app's tests start themselves (never as system services).
readonly -a SERVICE_PACKAGES=(postgresql redis-server)

log() { printf 'testbed-setup: %s\n' "$*"; }
die() { printf 'testbed-setup: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<USAGE
usage: $0 validators|docker

  validators  install promtool, amtool, nginx (no daemon started), shellcheck, openssl,
              debootstrap, docker.io (client), sslscan (the TLS scan of the deploy
              tests) and Compose v2 from Debian 13 (trixie)
  docker      'validators', then start dockerd if /var/run/docker.sock does not answer
USAGE
}

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
POLICY_RC_CREATED=0

apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq || die "apt-get update failed (is the Debian mirror reachable?)"
    APT_UPDATED=1
  fi
}

# A policy-rc.d that forbids starting services, so that installing nginx, prometheus or docker.io
# does not leave daemons running. Only ours is removed again.
block_service_starts() {
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# stagectl testbed-setup: no service starts during package installs\nexit 101\n' \
      >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
}

cleanup() {
  if [ "$POLICY_RC_CREATED" -eq 1 ] && grep -q 'stagectl testbed-setup' /usr/sbin/policy-rc.d 2>/dev/null; then
    rm -f /usr/sbin/policy-rc.d
  fi
}
trap cleanup EXIT

install_packages() {
  local -a missing=()
  local entry cmd pkg
  for entry in "${TOOLS[@]}"; do
    cmd=${entry%%:*}
    pkg=${entry#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/usr/bin/$cmd" ]; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "validators present: promtool amtool nginx shellcheck openssl debootstrap docker.io sslscan"
    return 0
  fi
  apt_update_once
  block_service_starts
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" ca-certificates debian-archive-keyring xz-utils >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  for entry in "${TOOLS[@]}"; do
    cmd=${entry%%:*}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] \
      || die "'$cmd' still missing after installing ${entry#*:}"
  done
}

install_service_packages() {
  local -a missing=()
  local pkg
  for pkg in "${SERVICE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "server binaries present: ${SERVICE_PACKAGES[*]}"
    return 0
  fi
  apt_update_once
  block_service_starts
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Prints the Compose version ("2.26.1") or nothing.
compose_version() {
  local out
  out=$(docker compose version --short 2>/dev/null) || return 0
  printf '%s\n' "${out#v}"
}

compose_ok() {
  local v major minor rest
  v=$(compose_version)
  [ -n "$v" ] || return 1
  major=${v%%.*}
  rest=${v#*.}
  minor=${rest%%.*}
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge "$COMPOSE_MIN_MINOR" ]; }
}

# Compose v2 from Debian 13, through a private apt configuration: the machine's own sources,
# lists and caches are not touched (the package depends only on libc6 >= 2.34).
install_compose_v2() {
  if compose_ok; then
    log "docker compose $(compose_version) present"
    return 0
  fi
  log "installing Compose v2 (docker-compose from Debian 13 trixie)"
  mkdir -p "$TRIXIE_DIR/lists/partial" "$TRIXIE_DIR/cache/archives/partial" \
    "$TRIXIE_DIR/sources.list.d" "$TRIXIE_DIR/debs"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$MIRROR" \
    >"$TRIXIE_DIR/sources.list"
  local -a opts=(
    -o "Dir::Etc::sourcelist=$TRIXIE_DIR/sources.list"
    -o "Dir::Etc::sourceparts=$TRIXIE_DIR/sources.list.d"
    -o "Dir::State::Lists=$TRIXIE_DIR/lists"
    -o "Dir::Cache=$TRIXIE_DIR/cache"
    -o "APT::Get::List-Cleanup=0"
  )
  apt-get "${opts[@]}" update -qq || die "apt-get update of the trixie lane failed ($MIRROR)"
  rm -f "$TRIXIE_DIR"/debs/docker-compose_*.deb
  (cd "$TRIXIE_DIR/debs" && apt-get "${opts[@]}" -o APT::Sandbox::User=root download docker-compose) \
    || die "apt-get download docker-compose (trixie) failed"
  local deb
  deb=$(find "$TRIXIE_DIR/debs" -maxdepth 1 -name 'docker-compose_*.deb' | head -n 1)
  [ -n "$deb" ] || die "no docker-compose .deb downloaded"
  dpkg -i "$deb" >/dev/null || die "dpkg -i $deb failed"
  compose_ok || die "docker compose version does not report Compose v2 >= 2.$COMPOSE_MIN_MINOR after installing $deb (got: '$(compose_version)')"
  log "docker compose $(compose_version) installed"
}

docker_answers() {
  timeout 10 docker info >/dev/null 2>&1
}

start_dockerd() {
  if docker_answers; then
    log "dockerd answering on /var/run/docker.sock"
    return 0
  fi
  local dockerd_bin
  dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)
  [ -x "$dockerd_bin" ] || die "dockerd not found (docker.io not installed?)"
  if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is running but not answering yet; waiting"
  else
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: the daemon outlives this script and its caller's session.
    setsid nohup "$dockerd_bin" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local waited=0
  until docker_answers; do
    if [ "$waited" -ge "$DOCKERD_WAIT" ]; then
      tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
      die "dockerd did not answer within ${DOCKERD_WAIT}s (see $DOCKERD_LOG)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "dockerd answering after ${waited}s ($(docker info --format '{{.ServerVersion}} {{.Driver}}' 2>/dev/null))"
}

main() {
  local mode=${1:-}
  case "$mode" in
    validators | docker) ;;
    -h | --help | help) usage; return 0 ;;
    *) usage >&2; die "unknown or missing subcommand '${mode}'" ;;
  esac
  [ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, dpkg, dockerd)"
  local t0=$SECONDS
  install_packages
  install_compose_v2
  if [ "$mode" = docker ]; then
    install_service_packages
    start_dockerd
  fi
  log "done: $mode ($((SECONDS - t0))s)"
}

main "$@"
