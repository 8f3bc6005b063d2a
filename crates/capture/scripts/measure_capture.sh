#!/bin/bash
# NFLOG / AF_PACKET per-packet cost between two namespaces. Run as root.
# Build first: cargo build --release -p geofence-capture --bins
# Usage: [E=dir-of-binaries] [N=packets] [MODE=all|afpacket] [RUNS=3] [RATE=50000] \
#        [RATES="$RATE max"] [SOURCES="pnet ring ring-b10 ring-immediate auto"] \
#        crates/capture/scripts/measure_capture.sh
# MODE=all (default): NFLOG rows, then the AF_PACKET comparison. MODE=afpacket: only the
# AF_PACKET comparison of SOURCES: pnet; ring = RingSource with RingConfig defaults (libpcap,
# TPACKET_V3, 1 ms block timeout); ring-bN = the same with an N ms block timeout;
# ring-immediate = immediate mode (libpcap then uses TPACKET_V2); auto = open_afpacket (the
# daemon's choice). Each at every rate of RATES: a number = paced at that many pps, max = one
# sender as fast as it can, max2 = two senders at once. RUNS rounds in interleaved order, one
# line per capture; each capture is stopped 1 s after its sender finished. RAW=1 also prints
# the helper's JSON, the veth packet counters and the SNMP / link counters that moved, and
# has the helper check udp-blast's sequence numbers (--seq; costs CPU, so not for cost figures).
# Traffic stays inside two throw-away namespaces on 198.51.100.0/24; they are deleted on exit.
set -u
E=${E:-${CARGO_TARGET_DIR:-target}/release}
N=${N:-200000}
MODE=${MODE:-all}
RUNS=${RUNS:-3}
RATE=${RATE:-50000}
RATES=${RATES:-"$RATE max"}
SOURCES=${SOURCES:-"pnet ring ring-b10 ring-immediate auto"}
A=gfmA$$; B=gfmB$$
T=$(mktemp -d)
cleanup() { ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add va$$ netns $A type veth peer name vb$$ netns $B
ip -n $A addr add 198.51.100.1/24 dev va$$; ip -n $B addr add 198.51.100.2/24 dev vb$$
for x in "$A va$$" "$B vb$$"; do set -- $x
  # no IPv6 autoconfiguration chatter (MLD, router solicitations) in the captures
  ip netns exec $1 sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n $1 link set $2 up; ip -n $1 link set lo up; done
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
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "== baseline: sender alone, $N x 64 B over 64 flows"
ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9998 $N 64
ip netns exec $A $E/geofence-nstraffic udp-rate 198.51.100.2:9998 $N 64 $RATE

if [ "$MODE" = all ]; then
echo "== NFLOG every packet (group 8)"
ip netns exec $A $E/geofence-nflog-dump --group 8 --quiet --idle-ms 1000 --max-ms 60000 > $T/m1.json 2>$T/m1.err & P=$!
sleep 0.5; ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $N 64; wait $P; cat $T/m1.json
echo "== NFLOG first packets of each flow (group 9), same traffic"
ip netns exec $A $E/geofence-nflog-dump --group 9 --quiet --enable-acct --idle-ms 1000 --max-ms 60000 > $T/m2.json 2>$T/m2.err & P=$!
sleep 0.5; ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9997 $N 64; wait $P; cat $T/m2.json
for t in "1" "1 --no-filter" "2"; do
  set -- $t
  echo "== pnet AF_PACKET on the receiving veth, threads=$1 ${2:-filter}"
  ip netns exec $B $E/geofence-afpacket-count --iface vb$$ --ms 15000 --threads $t --decode > $T/m3.json 2>$T/m3.err & P=$!
  sleep 0.5; ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $N 64; wait $P; cat $T/m3.json
done
fi

# f KEY FILE: a number from a one-line JSON object
f() { grep -o "\"$1\":[0-9.]*" "$2" | head -1 | cut -d: -f2; }
echo "== AF_PACKET comparison: $N x 64 B UDP over 64 flows, decode each packet, filter tcp or udp"
# veth_drop: packets the veth pair itself dropped (sender tx_dropped + receiver rx_dropped,
# e.g. backlog overflow), i.e. lost before any capture socket could see them
vdrops() { echo $(( $(ip netns exec $A cat /sys/class/net/va$$/statistics/tx_dropped) + \
  $(ip netns exec $B cat /sys/class/net/vb$$/statistics/rx_dropped) )); }
# backlog: drops of the per-CPU input backlog (/proc/net/softnet_stat, machine-wide, so
# other traffic on the host can add to it)
backlog() { local s=0 a b r; while read -r a b r; do s=$((s + 16#$b)); done < /proc/net/softnet_stat; echo $s; }
# delay: capture timestamp of the oldest packet of each batch to the end of that batch,
# mean/max over the batches, in ms (pnet stamps packets when it reads them: not comparable)
printf '%-4s %-6s %-19s %7s %8s %8s %9s %9s %7s %6s %9s %7s %11s\n' run rate source sent send_pps received k_dropped veth_drop backlog lost cpu_ms us_pkt delay_ms
for run in $(seq 1 $RUNS); do
  for rate in $RATES; do
    for src in $SOURCES; do
      v0=$(vdrops); b0=$(backlog)
      if [ -n "${RAW:-}" ]; then for n in $A $B; do ip netns exec $n nstat -asz > $T/n0.$n; ip -n $n -s -s link > $T/l0.$n; done; fi
      rm -f $T/stop
      case $src in ring-b*) sa="--source ring --block-ms ${src#ring-b}";; *) sa="--source $src";; esac
      ip netns exec $B $E/geofence-afpacket-count --iface vb$$ $sa --ms 60000 --stop-file $T/stop --decode ${RAW:+--seq} > $T/c.json 2>$T/c.err & P=$!
      # wait for READY (the sockets are open)
      for _ in $(seq 1 100); do grep -q READY $T/c.err && break; sleep 0.05; done
      if [ $rate = max ]; then
        ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $N 64 > $T/s.json
      elif [ $rate = max2 ]; then
        # two senders at once, N/2 each (sent and pps are their sums)
        ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $((N / 2)) 32 > $T/s1.json & S1=$!
        ip netns exec $A $E/geofence-nstraffic udp-blast 198.51.100.2:9999 $((N / 2)) 32 > $T/s2.json
        wait $S1
        echo "{\"sent\":$(( $(f sent $T/s1.json) + $(f sent $T/s2.json) )),\"pps\":$(awk -v a="$(f pps $T/s1.json)" -v b="$(f pps $T/s2.json)" 'BEGIN{printf "%.0f", a+b}')}" > $T/s.json
      else
        ip netns exec $A $E/geofence-nstraffic udp-rate 198.51.100.2:9999 $N 64 $rate > $T/s.json
      fi
      # the capture ends 1 s after the sender did (or after 60 s)
      sleep 1; touch $T/stop; wait $P
      if [ -n "${RAW:-}" ]; then cat $T/c.json
        echo "va tx_packets $(ip netns exec $A cat /sys/class/net/va$$/statistics/tx_packets) vb rx_packets $(ip netns exec $B cat /sys/class/net/vb$$/statistics/rx_packets)"
        for n in $A $B; do ip netns exec $n nstat -asz > $T/n1.$n
          echo "$n counters that moved:"; awk 'NR==FNR{a[$1]=$2; next} $2!=a[$1] && $1 !~ /^#/ {print "  "$1, $2-a[$1]}' $T/n0.$n $T/n1.$n | grep -v "InOctets\|OutOctets\|InPkts\|OutPkts\|InReceives\|OutRequests\|InDelivers\|OutTransmits\|InDatagrams\|OutDatagrams\|NoPorts\|InNoECTPkts" | head -20
          ip -n $n -s -s link | diff $T/l0.$n - | grep "^>" | head -12; done; fi
      sent=$(f sent $T/s.json); pps=$(f pps $T/s.json); rcv=$(f received $T/c.json)
      drp=$(f dropped $T/c.json); cpu=$(f cpu_us $T/c.json); vd=$(( $(vdrops) - v0 )); bd=$(( $(backlog) - b0 ))
      name=$src; [ $src = auto ] && name="auto:$(grep -o '"source":"[a-z-]*"' $T/c.json | cut -d'"' -f4)"
      dl=$(f max_delay_us $T/c.json); dm=$(f mean_batch_delay_us $T/c.json)
      printf '%-4s %-6s %-19s %7s %8s %8s %9s %9s %7s %6s %9s %7s %11s\n' $run $rate $name "$sent" "$pps" "$rcv" "$drp" "$vd" "$bd" \
        $(( ${sent:-0} - ${rcv:-0} )) "$(awk -v c="${cpu:-0}" 'BEGIN{ printf "%.1f", c/1000 }')" \
        "$(awk -v c="${cpu:-0}" -v r="${rcv:-0}" 'BEGIN{ if (r>0) printf "%.2f", c/r; else print "-" }')" \
        "$(awk -v d="${dl:-0}" -v m="${dm:-0}" 'BEGIN{ printf "%.1f/%.1f", m/1000, d/1000 }')"
    done
  done
done
