"""python -m local_kubernetes up [--local-images] [--image REF ...] | down | status |
recycle-volumes"""

from __future__ import annotations

import argparse
import json
import sys

from local_kubernetes import cluster
from local_kubernetes.layout import STORAGE_CLASS


def local_images() -> dict[str, str]:
    """role -> ref of every image the k8s stack runs here, built from this machine's binaries
    (there is no registry to pull from); cached by their inputs, so usually instant."""
    from tests.support.images import ensure_images
    from tests.support.k8s_images import ensure_k8s_images

    built = ensure_images()
    # Prometheus is the Docker target's; the k8s stack runs Redis, the exporter and the Job.
    return {"redis": built["redis"], "exporter": built["exporter"], **ensure_k8s_images()}


def stack_settings(images: dict[str, str]) -> dict[str, str]:
    """The k8s stack's settings that point it at this cluster: its storage, its three nodes
    (one zone each), and the local images, never pulled."""
    settings = {
        "storageClass": STORAGE_CLASS,
        "kubernetesNodes": "3",
        "zones": "3",
        "pullImages": "false",
        "redisImage": images.get("redis"),
        "exporterImage": images.get("exporter"),
        "bootstrapImage": images.get("bootstrap"),
    }
    return {key: value for key, value in settings.items() if value}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-kubernetes", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status", "recycle-volumes"))
    parser.add_argument("--image", action="append", default=[], metavar="REF",
                        help="a local Docker image to import into every node (repeatable)")
    parser.add_argument("--local-images", action="store_true",
                        help="build the stack's local images and import them into every node")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            images = local_images() if args.local_images else {}
            kubeconfig = cluster.up([*images.values(), *args.image])
            print(f"ready: three nodes; export KUBECONFIG={kubeconfig}")
            print("then point the k8s stack at it (and remove renderDir):")
            print("  pulumi config rm --stack k8s alphapulse-redis-cluster:renderDir")
            for key, value in stack_settings(images).items():
                print(f"  pulumi config set --stack k8s alphapulse-redis-cluster:{key} {value}")
        elif args.action == "recycle-volumes":
            recycled = cluster.recycle_released_volumes()
            print(f"recycled (wiped, Available again): {', '.join(recycled) or 'none'}")
        elif args.action == "down":
            cluster.down()
            print("removed: every process, the network and the state of the local cluster")
        else:
            print(json.dumps(cluster.status(), indent=2))
    except cluster.LocalClusterError as exc:
        print(f"local-kubernetes: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
