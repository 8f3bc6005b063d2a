#!/bin/bash
# NFLOG / AF_PACKET per-packet cost between two namespaces. Run as root.
# Build first: cargo build --release -p geofence-capture --bins
# Usage: [E=dir-of-binaries] [N=packets] crates/capture/scripts/measure_capture.sh
# Traffic stays inside two throw-away namespaces on 198.51.100.0/24; they are deleted on exit.
set -u
E=${E:-${CARGO_TARGET_DIR:-target}/release}
N=${N:-200000}
A=gfmA$$; B=gfmB$$
cleanup() { ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add va$$ netns $A type veth peer name vb$$ netns $B
ip -n $A addr add 198.51.100.1/24 dev va$$; ip -n $B addr add 198.51.100.2/24 dev vb$$
for x in "$A va$$" "$B vb$$"; do set -- $x; ip -n $1 link set $2 up; ip -n $1 link set lo up; done
ip netns exec $B nft -f - <<NFT
table inet sink {
  chain in { type filter hook input priority 0; udp dport 9999 drop
  }
}
NFT
ip netns exec $A nft -f - <<NFT
table inet gfm {
  chain out { type filter hook output priority 0;
    udp dport 9999 log group 8 snaplen 256
    ct direction original ct original packets < 6 log group 9 snaplen 256
  }
}
NFT
echo "== baseline: sender alone, $N x 64 B over 64 flows"
ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9998 $N 64
echo "== NFLOG every packet (group 8)"
ip netns exec $A $E/geofence-nflog-dump --group 8 --quiet --idle-ms 1000 --max-ms 60000 > /tmp/m1.json 2>/tmp/m1.err & P=$!
sleep 0.5; ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $N 64; wait $P; cat /tmp/m1.json
echo "== NFLOG first packets of each flow (group 9), same traffic"
ip netns exec $A $E/geofence-nflog-dump --group 9 --quiet --enable-acct --idle-ms 1000 --max-ms 60000 > /tmp/m2.json 2>/tmp/m2.err & P=$!
sleep 0.5; ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9997 $N 64; wait $P; cat /tmp/m2.json
for t in "1" "1 --no-filter" "2"; do
  set -- $t
  echo "== AF_PACKET on the receiving veth, threads=$1 ${2:-filter}"
  ip netns exec $B $E/geofence-afpacket-count --iface vb$$ --ms 15000 --threads $t --decode > /tmp/m3.json 2>/tmp/m3.err & P=$!
  sleep 0.5; ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $N 64; wait $P; cat /tmp/m3.json
done
