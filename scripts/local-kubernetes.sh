#!/usr/bin/env bash
# A three-node Kubernetes on this machine, from Kubernetes' own components, to try the k8s stack
# without a cloud (local_kubernetes/ says how it is put together):
#
#   scripts/local-kubernetes.sh up       build what is missing (cached), start the cluster
#                                        (whatever an earlier or killed run left is removed
#                                        first), import the local images into every node, and
#                                        print the kubeconfig and the stack settings to use
#   scripts/local-kubernetes.sh status   processes, nodes, kubeconfig
#   scripts/local-kubernetes.sh down     stop everything and remove its network and state
#   scripts/local-kubernetes.sh recycle-volumes
#                                        wipe the local volumes whose claims were deleted (a
#                                        destroyed stack) and make them Available again
#
# Needs root (network namespaces, cgroups, iptables) and Debian (packages are installed by
# scripts/setup-test-env.sh). Every address it uses is private to this machine (10.214.0.0/24
# for nodes, 10.244.0.0/16 for pods, 10.96.0.0/16 for Services).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[local-kubernetes] %s\n' "$*" >&2; }

case "${1:-}" in
  up)
    bash scripts/setup-test-env.sh >&2
    bash scripts/build-kubernetes.sh >&2
    bash scripts/build-coredns.sh >&2
    exec python3 -m local_kubernetes up --local-images
    ;;
  down | status | recycle-volumes)
    exec python3 -m local_kubernetes "$1"
    ;;
  *)
    printf 'usage: %s up|down|status|recycle-volumes\n' "$0" >&2
    exit 2
    ;;
esac
