# Shared by build, bin-dir, up and down. Sourced, never run.
# shellcheck shell=bash

CP_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The machines keep Go at /usr/local/go; a login shell may not have it on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH=/usr/local/go/bin:$PATH
fi

cp_die() {
  echo "controlplane: $*" >&2
  exit 1
}

cp_log() {
  echo "controlplane: $*" >&2
}

# Version of a module as required by a go.mod file.
cp_mod_version() { # FILE MODULE
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

K8S_VERSION=$(cp_mod_version "$CP_HERE/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(cp_mod_version "$CP_HERE/go.mod" go.etcd.io/etcd/server/v3)
HELM_VERSION=$(cp_mod_version "$CP_HERE/helm/go.mod" helm.sh/helm/v4)

# The cache key changes whenever a pinned version, a module file or the build script changes.
cp_bin_dir() {
  local hash
  hash=$(cat "$CP_HERE/build" "$CP_HERE/go.mod" "$CP_HERE/go.sum" "$CP_HERE/helm/go.mod" "$CP_HERE/helm/go.sum" \
    | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/bin/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_${hash}"
}

CP_BINARIES=(kube-apiserver etcd kubectl helm)

# kube-controller-manager has a cache directory and key of its own (see build-controller-manager),
# so that it never changes the key above.
cp_kcm_bin_dir() {
  local hash
  hash=$(cat "$CP_HERE/build-controller-manager" "$CP_HERE/controller-manager/go.mod" \
    "$CP_HERE/controller-manager/go.sum" | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/bin/kcm-${K8S_VERSION}_${hash}"
}

cp_kcm_is_built() { # BIN_DIR
  [ -f "$1/.complete" ] && [ -x "$1/kube-controller-manager" ]
}

cp_is_built() { # BIN_DIR
  local b
  [ -f "$1/.complete" ] || return 1
  for b in "${CP_BINARIES[@]}"; do
    [ -x "$1/$b" ] || return 1
  done
}

# Start time of a live process (field 22 of /proc/PID/stat), which tells it from a later process
# that got the same pid; nothing for a gone or zombie process.
cp_starttime() { # PID
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  [ "$1" != Z ] || return 0
  echo "${20}"
}

# True while PID is still the process that had start time START.
cp_alive() { # PID START
  [ -n "$1" ] && [ -n "$2" ] && [ "$(cp_starttime "$1")" = "$2" ]
}

# A value from DIR/env, read as data rather than sourced.
cp_env_value() { # DIR NAME
  [ -f "$1/env" ] || return 0
  sed -n "s/^$2=//p" "$1/env" | head -n1
}
