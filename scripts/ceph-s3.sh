#!/bin/bash
# ceph-s3.sh start|stop DIR — a throwaway single-node Ceph (monitor, one in-memory OSD, radosgw)
# on 127.0.0.1, without systemd, for regstore's S3 tests and benchmark.
#
#   start DIR  starts it with all its state in DIR (emptied first) and writes DIR/env with
#              S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (source it with `set -a`);
#              ready in about a second.
#   stop DIR   SIGKILLs the daemons it started, by the PIDs in DIR/run (radosgw can hang for
#              up to 120 s on SIGTERM, and nothing needs preserving).
#
# DIR may also come from $CEPH_DIR. Needs the packages ceph-mon, ceph-osd and radosgw:
#   apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
# Every daemon listens on 127.0.0.1 only, on ports the kernel reported free.
set -euo pipefail
usage() { echo "usage: $0 start|stop DIR (or set CEPH_DIR)" >&2; exit 2; }
[ $# -ge 1 ] || usage
D=${2:-${CEPH_DIR:-}}
[ -n "$D" ] || usage
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
answers() {  # whether an HTTP GET of $1 returns 200
  python3 -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)' "$1" 2>/dev/null
}
stop() {
  local pids; pids=$(cat "$D"/run/*.pid 2>/dev/null || true); [ -n "$pids" ] || return 0
  kill -9 $pids 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  rm -f "$D"/run/*.pid
}
start() {
  stop; rm -rf "$D"; mkdir -p "$D"/{mon,osd/osd.0,run,log}
  local MON_PORT RGW_PORT FSID C
  MON_PORT=$(freeport); RGW_PORT=$(freeport); FSID=$(cat /proc/sys/kernel/random/uuid); C="-c $D/ceph.conf"
  cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon_host = v1:127.0.0.1:$MON_PORT
public_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
run_dir = $D/run
admin_socket = $D/run/\$name.asok
pid_file = $D/run/\$name.pid
log_file = $D/log/\$name.log
mon_data = $D/mon/\$name
osd_data = $D/osd/\$name
# objects live in RAM, capped at 2 GiB
osd_objectstore = memstore
memstore_device_bytes = 2147483648
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 1
osd_pool_default_pgp_num = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 1
mon_data_avail_crit = 0
# short paxos and tick timers: ready in ~1 s instead of ~12 s
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
mon_tick_interval = 1
[osd]
osd_memory_target = 536870912
# the OSD's own boot-time crush commands fail about one start in three ('wrong fsid');
# this script places the OSD in the CRUSH map instead
osd_crush_update_on_start = false
osd_class_update_on_start = false
[client.rgw.a]
# without tcp_nodelay every small request waits ~44 ms for a delayed ACK
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_dns_name = localhost
CONF
  monmaptool --create --add a "v1:127.0.0.1:$MON_PORT" --fsid "$FSID" "$D/monmap" >>"$D/log/start.out" 2>&1
  ceph-mon $C -i a --mkfs --monmap "$D/monmap" >>"$D/log/start.out" 2>&1
  ceph-mon $C -i a >>"$D/log/start.out" 2>&1                           # daemonizes; pid in $D/run
  ceph $C --connect-timeout 30 osd create >>"$D/log/start.out" 2>&1    # -> osd.0
  ceph $C osd crush add osd.0 1.0 root=default host=localhost >>"$D/log/start.out" 2>&1
  ceph-osd $C -i 0 --mkfs >>"$D/log/start.out" 2>&1
  ceph-osd $C -i 0 >>"$D/log/start.out" 2>&1
  radosgw $C -n client.rgw.a >>"$D/log/start.out" 2>&1
  local ok=0
  for _ in $(seq 600); do   # up to 60 s
    if answers "http://127.0.0.1:$RGW_PORT/"; then ok=1; break; fi
    sleep 0.1
  done
  [ $ok = 1 ] || { echo "radosgw not ready; see $D/log" >&2; tail -n 20 "$D"/log/*.log >&2; stop; return 1; }
  radosgw-admin $C user create --uid=ci --display-name=ci --access-key=ciaccess --secret=cisecret >>"$D/log/start.out" 2>&1
  printf 'S3_ENDPOINT=http://127.0.0.1:%s\nS3_ACCESS_KEY=ciaccess\nS3_SECRET_KEY=cisecret\n' "$RGW_PORT" > "$D/env"
  cat "$D/env"
}
case "$1" in start) start ;; stop) stop ;; *) usage ;; esac
