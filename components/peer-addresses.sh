#!/bin/sh
# Keeps every Redis pod's idea of where its peers are current (Kubernetes target).
#
# Why: Redis keeps its peers' IPs in nodes.conf and the cluster bus connects to those IPs only;
# the announced hostname is for clients. One rescheduled pod is found again through gossip, but
# after a full restart every pod has a new IP and nobody can reach anybody: the cluster never
# re-forms (bitnami/charts#10774, #20395). Each peer's entry also carries the hostname the peer
# announced (`ip:port@cport,hostname`), its stable pod DNS name, so the fix is a lookup, not a
# guess. Two modes, both needed on real pods:
#
#   nodes-conf [NODES_CONF]   init container: before redis-server starts, point every peer whose
#                             name resolves at its current IP. Pods that start first see few or
#                             none of their peers' new IPs, so this alone does not re-form.
#   follow PASSWORD_FILE [HOST [PORT [INTERVAL_S]]]
#                             sidecar: every INTERVAL_S (2) ask the node for CLUSTER NODES; for a
#                             peer that is disconnected or failing and whose name now resolves to
#                             another IP, send CLUSTER MEET <new ip>. The handshake meets a node
#                             id it already knows and Redis updates that peer's address in place
#                             (cluster.c, "Handshake: we already know node"): same ids, slots and
#                             epochs. A replica whose master moved is pointed at the master's
#                             new IP too (see follow_master).
#
# Also in `follow`: with TLS, when the certificate files change under the node (a renewed
# certificate or a new CA: the kubelet updates a mounted Secret some time after the Secret
# changed), make Redis load them again (CONFIG SET of a TLS file directive reloads all of them).
#
# Environment (no secret in any): REDIS_CLI, the engine's CLI (default redis-cli; valkey-cli);
# REDIS_CLI_ARGS, its TLS and ACL user flags;
# TLS_FILES, pairs of "directive path" to watch (empty: plaintext).
#
# Needs only sh, cat, awk, getent and the CLI (the server images have them all). The password
# goes to redis-cli on stdin (--askpass), never on argv or in the environment.
set -eu

# awk functions shared by both modes. peer(field) splits `ip:port@cport,hostname[,aux=...]` into
# P_ip, P_port, P_cport, P_host and P_aux (Redis 7.2+ and Valkey write auxiliary fields such as
# shard-id after the hostname in nodes.conf; 7.0 writes none); false without a hostname.
AWK_LIBRARY='
function resolve(host,    cmd, line, parts) {
  # Only DNS names reach the shell: these entries are written from what peers announce.
  if (host !~ /^[A-Za-z0-9.-]+$/) return ""
  cmd = "getent hosts " host
  line = ""
  if ((cmd | getline line) <= 0) line = ""
  close(cmd)
  split(line, parts, " ")
  return parts[1]
}
function peer(field,    comma, address, at, hostport) {
  P_ip = ""; P_port = ""; P_cport = ""; P_host = ""; P_aux = ""
  comma = index(field, ",")
  if (comma == 0) return 0
  address = substr(field, 1, comma - 1)
  P_host = substr(field, comma + 1)
  comma = index(P_host, ",")
  if (comma > 0) {
    P_aux = substr(P_host, comma)
    P_host = substr(P_host, 1, comma - 1)
  }
  at = index(address, "@")
  if (P_host == "" || at == 0) return 0
  hostport = substr(address, 1, at - 1)
  if (!match(hostport, /:[0-9]+$/)) return 0
  P_ip = substr(hostport, 1, RSTART - 1)
  P_port = substr(hostport, RSTART + 1)
  P_cport = substr(address, at + 1)
  return 1
}
'

refresh_nodes_conf() {
  conf="${1:-/data/nodes.conf}"
  [ -s "$conf" ] || return 0  # a fresh node: nothing to refresh
  tmp="$conf.refresh.$$"
  awk "$AWK_LIBRARY"'
$1 != "vars" && NF >= 8 && peer($2) {
  ip = resolve(P_host)
  if (ip != "" && ip != P_ip) {
    $2 = ip ":" P_port "@" P_cport "," P_host P_aux
    printf "peer-addresses: %s %s -> %s\n", P_host, P_ip, ip > "/dev/stderr"
  }
}
{ print }
' "$conf" >"$tmp"
  # rename is atomic: redis-server (started after this container) never sees half a file.
  mv -f "$tmp" "$conf"
}

cli() {
  # REDIS_CLI_ARGS is split into words on purpose: flags only, set by the pod spec.
  # shellcheck disable=SC2086
  "${REDIS_CLI:-redis-cli}" ${REDIS_CLI_ARGS:-} --no-auth-warning --askpass -h "$host" -p "$port" "$@" \
    <"$password_file"
}

# The TLS files' contents (a few KB of PEM: compared as they are, so no checksum tool is
# needed); empty without TLS_FILES.
tls_files_content() {
  [ -n "${TLS_FILES:-}" ] || return 0
  # shellcheck disable=SC2086
  set -- $TLS_FILES
  paths=""
  while [ $# -ge 2 ]; do paths="$paths $2"; shift 2; done
  # shellcheck disable=SC2086
  cat $paths 2>/dev/null
}

# Reload when the files differ from what the node last loaded (as seen at the last check).
reload_tls_if_changed() {
  now=$(tls_files_content)
  if [ -n "$now" ] && [ -n "$tls_loaded" ] && [ "$now" != "$tls_loaded" ]; then
    # shellcheck disable=SC2086
    set -- $TLS_FILES
    answer=$(cli CONFIG SET "$1" "$2" 2>&1) || true
    echo "peer-addresses: TLS files changed: CONFIG SET $1 $answer"
    [ "$answer" = OK ] || return 0  # not loaded: try again at the next check
  fi
  tls_loaded="$now"
}

follow_peers() {
  password_file="$1" host="${2:-127.0.0.1}" port="${3:-6379}" interval="${4:-2}"
  # PID 1 of its container: without a handler SIGTERM would be ignored and every pod deletion
  # would wait out the grace period.
  trap 'exit 0' TERM INT
  tls_loaded=$(tls_files_content)  # what redis-server loaded at start (or just after)
  while :; do
    reload_tls_if_changed
    cli CLUSTER NODES 2>/dev/null | awk "$AWK_LIBRARY"'
function ip_of(field,    at) {
  at = index(field, "@")
  field = substr(field, 1, at > 0 ? at - 1 : length(field))
  sub(/:[0-9]+$/, "", field)
  return field
}
NF >= 8 { ip[$1] = ip_of($2) }
NF >= 8 && $3 ~ /myself/ && $3 ~ /slave/ { master = $4 }
NF >= 8 && $3 !~ /myself|handshake|noaddr/ && ($8 == "disconnected" || $3 ~ /fail/) && peer($2) {
  now = resolve(P_host)
  if (now != "" && now != P_ip) print "meet", P_host, P_ip, now, P_port, P_cport
}
END { if (master != "" && ip[master] != "") print "master", master, ip[master] }
' | while read -r action a b c d e; do
      case "$action" in
        meet) answer=$(cli CLUSTER MEET "$c" "$d" "$e" 2>&1) || true
              echo "peer-addresses: $a $b -> $c: CLUSTER MEET $answer" ;;
        master) follow_master "$a" "$b" ;;
      esac
    done || true
    sleep "$interval" &
    wait $! || true
  done
}

# A replica that learnt its master's new IP from gossip (not from a handshake) keeps
# replicating from the old IP: that path of cluster.c (clusterProcessGossipSection, 7.0 to 7.2
# at least) updates the address but not the replication link. CLUSTER REPLICATE <the same
# master> points it at the new IP; it continues with a partial resync.
follow_master() {
  master_id="$1" master_ip="$2"
  info=$(cli INFO replication 2>/dev/null | tr -d '\r') || return 0
  replicating_from=$(printf '%s\n' "$info" | sed -n 's/^master_host://p')
  link=$(printf '%s\n' "$info" | sed -n 's/^master_link_status://p')
  if [ "$link" = down ] && [ -n "$replicating_from" ] && [ "$replicating_from" != "$master_ip" ]
  then
    answer=$(cli CLUSTER REPLICATE "$master_id" 2>&1) || true
    echo "peer-addresses: master moved to $master_ip, replication still at $replicating_from:" \
      "CLUSTER REPLICATE $answer"
  fi
}

mode="${1:-}"
[ $# -gt 0 ] && shift
case "$mode" in
  nodes-conf) refresh_nodes_conf "$@" ;;
  follow) follow_peers "$@" ;;
  *) echo "usage: $0 nodes-conf [NODES_CONF] | follow PASSWORD_FILE [HOST [PORT [INTERVAL_S]]]" >&2
     exit 2 ;;
esac
