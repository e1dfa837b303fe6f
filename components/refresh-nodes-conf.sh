#!/bin/sh
# Init container of every Redis pod (Kubernetes target): before redis-server starts, point each
# peer's entry in nodes.conf at the peer's current pod IP, found through its stable DNS name.
#
# Why: Redis (7.0) keeps its peers' IPs in nodes.conf and the cluster bus connects to those IPs
# only; the announced hostname is for clients. One rescheduled pod is found again through gossip,
# but after a full restart every pod has a new IP and nobody can reach anybody: the cluster never
# re-forms (bitnami/charts#10774, #20395). Each entry of nodes.conf also carries the hostname the
# peer announced (`ip:port@cport,hostname`), so the fix is a lookup, not a guess. A name that does
# not resolve yet (that pod has no IP yet) keeps its old IP: that peer, when it starts, resolves
# this pod's new IP and its gossip tells everybody else.
#
# Usage: refresh-nodes-conf.sh [nodes.conf path]; needs only sh, awk and getent (the redis image
# has all three). Never touches node ids, flags, epochs or slots.
set -eu
conf="${1:-/data/nodes.conf}"
[ -s "$conf" ] || exit 0  # a fresh node: nothing to refresh
tmp="$conf.refresh.$$"
awk '
function resolve(host,    cmd, line, parts) {
  # Only DNS names reach the shell: nodes.conf is written from what peers announce.
  if (host !~ /^[A-Za-z0-9.-]+$/) return ""
  cmd = "getent hosts " host
  line = ""
  if ((cmd | getline line) <= 0) line = ""
  close(cmd)
  split(line, parts, " ")
  return parts[1]
}
$1 != "vars" && NF >= 8 && index($2, ",") > 0 {
  comma = index($2, ",")
  address = substr($2, 1, comma - 1)   # ip:port@cport
  host = substr($2, comma + 1)
  at = index(address, "@")
  hostport = substr(address, 1, at - 1)
  if (host != "" && at > 0 && match(hostport, /:[0-9]+$/)) {
    old_ip = substr(hostport, 1, RSTART - 1)
    ip = resolve(host)
    if (ip != "" && ip != old_ip) {
      $2 = ip substr(hostport, RSTART) substr(address, at) "," host
      printf "refresh-nodes-conf: %s %s -> %s\n", host, old_ip, ip > "/dev/stderr"
    }
  }
}
{ print }
' "$conf" >"$tmp"
# rename is atomic: redis-server (started after this container) never sees half a file.
mv -f "$tmp" "$conf"
