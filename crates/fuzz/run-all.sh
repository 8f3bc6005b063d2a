#!/bin/sh
# Runs every fuzz target in turn for SECS seconds (default 300), one at a
# time, with the memory limits used for docs/fuzzing.md. Logs to $LOGS
# (default logs/).
# Usage (from crates/fuzz): [LOGS=dir] ./run-all.sh [SECS] [target...]
set -u
SECS=${1:-300}
[ $# -gt 0 ] && shift
TARGETS=${*:-"dns tls quic quic_frames stun payload decode policy sigdb engine mmdb engine_long"}
LOGS=${LOGS:-logs}
mkdir -p "$LOGS"
for t in $TARGETS; do
    case $t in
        dns|stun|payload|quic) MAXLEN=2048 ;;
        quic_frames) MAXLEN=8192 ;;
        policy|sigdb) MAXLEN=16384 ;;
        *) MAXLEN=65536 ;;
    esac
    mkdir -p corpus/$t
    RUSTC_BOOTSTRAP=1 cargo fuzz run -a --fuzz-dir . "$t" "corpus/$t" -- \
        -max_total_time="$SECS" -max_len="$MAXLEN" \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
        -print_final_stats=1 >"$LOGS/$t.log" 2>&1
    echo "$t: exit $? $(grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units' "$LOGS/$t.log" | tr '\n' ' ')"
done
