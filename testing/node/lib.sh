# Shared by build, up, down and image. Sourced, never run.
# shellcheck shell=bash

NODE_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../controlplane/lib.sh
source "$NODE_HERE/../controlplane/lib.sh"

node_die() {
  echo "node: $*" >&2
  exit 1
}

node_log() {
  echo "node: $*" >&2
}

NODE_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator"

# kubelet, kube-scheduler and kube-proxy come from kube/go.mod, which must pin the control plane's
# k8s.io/kubernetes: a node of another release than its apiserver is not what users run.
node_bin_dir() {
  local hash
  hash=$(cat "$NODE_HERE/build" "$NODE_HERE/pause.c" "$NODE_HERE/kube/go.mod" "$NODE_HERE/kube/go.sum" |
    sha256sum | cut -c1-12)
  echo "$NODE_CACHE/bin/node-${K8S_VERSION}_${hash}"
}
NODE_BINARIES=(kubelet kube-scheduler kube-proxy pause)

node_is_built() { # BIN_DIR
  local b
  [ -f "$1/.complete" ] || return 1
  for b in "${NODE_BINARIES[@]}"; do
    [ -x "$1/$b" ] || return 1
  done
  [ -s "$1/pause.tar" ]
}

# The base images the Dockerfile names, and the pause image; see build.
# shellcheck disable=SC2034 # used by build and up
PAUSE_IMAGE=registry.k8s.io/pause:3.10
# Debian packages the node runs on: the container engine for builds, the runtime and CNI for pods.
# shellcheck disable=SC2034 # used by build
NODE_PACKAGES=(docker.io containerd runc containernetworking-plugins iptables debootstrap gcc libc6-dev)

# The image builder's own dockerd: its data root is a cache (base images, BuildKit cache mounts), its
# socket and exec root are per run. No bridge and no iptables rules: builds use the host's network.
NODE_DOCKER_ROOT="$NODE_CACHE/docker"

node_dockerd_start() { # RUN_DIR; sets DOCKER_HOST and node_dockerd_pid
  local run=$1
  mkdir -p "$run" "$NODE_DOCKER_ROOT"
  command -v dockerd >/dev/null 2>&1 || node_die "dockerd is missing (Debian package docker.io): run testing/node/build"
  # One dockerd per data root at a time; a second image build waits here.
  exec 8>"$NODE_DOCKER_ROOT.lock"
  flock 8
  : >"$run/dockerd.log"
  setsid dockerd --data-root "$NODE_DOCKER_ROOT" --exec-root "$run/x" --pidfile "$run/dockerd.pid" \
    -H "unix://$run/docker.sock" --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    --storage-driver=overlay2 \
    </dev/null >>"$run/dockerd.log" 2>&1 &
  node_dockerd_pid=$!
  disown "$node_dockerd_pid"
  export DOCKER_HOST="unix://$run/docker.sock"
  local deadline=$((SECONDS + 60))
  until /usr/bin/docker version >/dev/null 2>&1; do
    if ! kill -0 "$node_dockerd_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      tail -n 5 "$run/dockerd.log" >&2
      node_dockerd_stop
      node_die "dockerd did not start (log: $run/dockerd.log)"
    fi
    sleep 0.3
  done
}

node_dockerd_stop() {
  [ -n "${node_dockerd_pid:-}" ] || return 0
  kill -TERM "$node_dockerd_pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$node_dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$node_dockerd_pid" 2>/dev/null || true
  node_dockerd_pid=""
}
