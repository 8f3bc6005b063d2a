#!/bin/bash
# Geofence installer for a fresh Debian 12 (bookworm) machine. Run as root
# from a checkout of the repository:
#
#   systemd/install.sh [--no-start] [--skip-build] [--no-geoip]      (as root;
#   from a user account: sudo systemd/install.sh ...)
#                           [--fix-nftables-conf] [--help]
#
# DESTDIR=/some/dir stages every file under that directory instead (for
# packaging and tests): no apt-get, no systemctl, nothing outside DESTDIR.
#
# Idempotent: running it again upgrades binaries, units and shipped reference
# files, and never overwrites /etc/geofence/geofence.toml or a GeoIP database
# that is already there.
#
#   1. apt-get install: libnftnl-dev libmnl-dev pkg-config nftables libpcap-dev
#      (+ build-essential curl ca-certificates when missing)
#   2. cargo build --release --locked (Rust >= 1.85 must already be installed)
#   3. install geofenced and geofencectl to /usr/local/bin, the default policy
#      to /etc/geofence/geofence.toml, units to /etc/systemd/system, the
#      logrotate and sysctl snippets, docs to /usr/local/share/doc/geofence
#   4. GeoIP: use /var/lib/GeoIP/GeoLite2-Country.mmdb if present, else fetch
#      the free ip-location-db country database (CC0 / CC BY 4.0, NRO) into
#      /var/lib/geofence/geoip/geo-whois-asn-country.mmdb
#   4b. /etc/nftables.conf: Debian's stock file starts with `flush ruleset`,
#      which deletes table inet geofence at every `systemctl restart
#      nftables`. Without consent the installer only warns; with
#      --fix-nftables-conf it replaces that line by the deletion of the
#      file's own tables (nftables-conf-rewrite), keeping the original as
#      /etc/nftables.conf.geofence-orig, after `nft -c` accepts the result.
#   5. with systemd as PID 1 and without --no-start:
#      systemctl daemon-reload && systemctl enable --now geofenced
#      (restart if it was already running: the kernel rules stay in force
#      during the restart)
set -euo pipefail

START=1
BUILD=1
GEOIP=1
FIX_NFT=0
usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --no-start) START=0 ;;
        --skip-build) BUILD=0 ;;
        --no-geoip) GEOIP=0 ;;
        --fix-nftables-conf) FIX_NFT=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

DESTDIR=${DESTDIR:-}
if [ -n "$DESTDIR" ]; then
    DESTDIR=$(mkdir -p "$DESTDIR" && cd "$DESTDIR" && pwd)
    START=0
else
    [ "$(id -u)" -eq 0 ] || die "run as root: in a root shell \`$0\`, from a user account \`sudo $0\` (or \`su -c $0\`)"
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -f "$REPO/Cargo.toml" ] || [ ! -d "$REPO/crates/geofenced" ]; then
    die "$REPO does not look like the Geofence repository"
fi

BIN_DIR=$DESTDIR/usr/local/bin
LIB_DIR=$DESTDIR/usr/local/lib/geofence
SHARE_DIR=$DESTDIR/usr/local/share/geofence
DOC_DIR=$DESTDIR/usr/local/share/doc/geofence
ETC_DIR=$DESTDIR/etc/geofence
UNIT_DIR=$DESTDIR/etc/systemd/system
LOGROTATE_DIR=$DESTDIR/etc/logrotate.d
SYSCTL_DIR=$DESTDIR/etc/sysctl.d
STATE_DIR=$DESTDIR/var/lib/geofence
LOG_DIR=$DESTDIR/var/log/geofence
FREE_DB=$STATE_DIR/geoip/geo-whois-asn-country.mmdb
MAXMIND_DB=$DESTDIR/var/lib/GeoIP/GeoLite2-Country.mmdb

if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
        warn "written for Debian 12; this is ${PRETTY_NAME:-unknown}. Continuing."
    fi
fi

# --- 1. system packages ---------------------------------------------------
want=(libnftnl-dev libmnl-dev pkg-config nftables libpcap-dev build-essential curl ca-certificates)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ -n "$DESTDIR" ]; then
    say "DESTDIR set: not installing packages (missing here: ${missing[*]:-none})"
elif [ ${#missing[@]} -gt 0 ]; then
    say "installing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
else
    say "system packages already installed"
fi

# --- 2. build ---------------------------------------------------------------
# Build as the invoking user when run through sudo, so target/ stays theirs.
BUILD_USER=root
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    BUILD_USER=$SUDO_USER
fi
run_as_builder() {
    if [ "$BUILD_USER" = root ]; then
        "$@"
    else
        runuser -u "$BUILD_USER" -- "$@"
    fi
}
find_cargo() {
    local home c
    home=$(getent passwd "$BUILD_USER" | cut -d: -f6)
    for c in "$(command -v cargo 2>/dev/null || true)" "$home/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
if [ "$BUILD" = 1 ]; then
    if ! CARGO=$(find_cargo); then
        cat >&2 <<'MSG'
install.sh: error: cargo (Rust) was not found.
  Geofence needs Rust 1.85 or newer, installed with rustup (Debian 12's own
  rustc 1.63 is too old). As the user who builds, run:
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
      . "$HOME/.cargo/env"
  then run this script again as root. Or build elsewhere, copy target/
  here and use --skip-build.
MSG
        exit 1
    fi
    CARGO_BIN_DIR=$(dirname "$CARGO")
    rustc_version=$(run_as_builder env PATH="$CARGO_BIN_DIR:$PATH" rustc --version 2>/dev/null | awk '{print $2}')
    minor=$(printf '%s' "$rustc_version" | cut -d. -f2)
    if [ "$(printf '%s' "$rustc_version" | cut -d. -f1)" = 1 ] && [ "${minor:-0}" -lt 85 ]; then
        die "rustc $rustc_version is too old; Geofence needs 1.85+ (run: rustup update stable)"
    fi
    say "building release binaries with $CARGO (rustc $rustc_version) as $BUILD_USER"
    run_as_builder env PATH="$CARGO_BIN_DIR:$PATH" CARGO_TARGET_DIR="$TARGET_DIR" \
        "$CARGO" build --release --locked --manifest-path "$REPO/Cargo.toml" \
        -p geofenced -p geofencectl
fi
for b in geofenced geofencectl; do
    [ -x "$TARGET_DIR/release/$b" ] || die "$TARGET_DIR/release/$b is missing (build failed or --skip-build without a build)"
done

# --- 3. files -----------------------------------------------------------------
say "installing binaries to $BIN_DIR"
install -d -m 0755 "$BIN_DIR" "$LIB_DIR" "$SHARE_DIR" "$DOC_DIR"
for b in geofenced geofencectl; do
    # install(1) writes a new inode, so a running daemon is not disturbed.
    install -m 0755 "$TARGET_DIR/release/$b" "$BIN_DIR/$b"
done
install -m 0755 "$REPO/systemd/geoip-update.sh" "$LIB_DIR/geoip-update"
install -m 0755 "$REPO/systemd/nftables-conf-rewrite.sh" "$LIB_DIR/nftables-conf-rewrite"

say "installing configuration to $ETC_DIR"
install -d -m 0755 "$ETC_DIR" "$ETC_DIR/apps.d"
if [ -e "$ETC_DIR/geofence.toml" ]; then
    install -m 0644 "$REPO/config/geofence.toml" "$ETC_DIR/geofence.toml.dist"
    say "kept existing $ETC_DIR/geofence.toml; the shipped default is $ETC_DIR/geofence.toml.dist"
else
    install -m 0644 "$REPO/config/geofence.toml" "$ETC_DIR/geofence.toml"
fi
# The built-in app signatures are compiled into the binaries; the shipped
# files are installed as read-only reference. /etc/geofence/apps.d is for
# the admin's own [[app]] files and is never touched.
rm -rf "$SHARE_DIR/apps.d" "$SHARE_DIR/examples" "$SHARE_DIR/signatures"
cp -r "$REPO/config/apps.d" "$SHARE_DIR/apps.d"
if [ -d "$REPO/config/examples" ]; then
    cp -r "$REPO/config/examples" "$SHARE_DIR/examples"
fi
# Opt-in signature lists (not built in): e.g. the public encrypted DNS
# resolvers for the DNS gate (config/examples/dns-gate.toml).
if [ -d "$REPO/config/signatures" ]; then
    cp -r "$REPO/config/signatures" "$SHARE_DIR/signatures"
fi
chmod -R u=rwX,go=rX "$SHARE_DIR"
for d in "$REPO"/docs/*.md; do
    [ -e "$d" ] && install -m 0644 "$d" "$DOC_DIR/"
done

say "installing systemd units, logrotate and sysctl snippets"
install -d -m 0755 "$UNIT_DIR" "$LOGROTATE_DIR" "$SYSCTL_DIR"
for u in geofenced.service geofence-geoip-update.service geofence-geoip-update.timer; do
    install -m 0644 "$REPO/systemd/$u" "$UNIT_DIR/$u"
done
install -m 0644 "$REPO/systemd/logrotate.d/geofence" "$LOGROTATE_DIR/geofence"
cat > "$SYSCTL_DIR/90-geofence.conf" <<'SYSCTL'
# Geofence: per-flow packet counters in conntrack (needed by the
# `ct original packets < N` rule that copies each flow's first packets).
net.netfilter.nf_conntrack_acct = 1
SYSCTL
install -d -m 0750 "$STATE_DIR"
install -d -m 0755 "$LOG_DIR" "$STATE_DIR/geoip"
# Pre-create the alert file as root:adm 0640 so log shippers in group adm can
# read it from the first line (the daemon would create it root:root; logrotate
# recreates it root:adm). An existing file is left alone.
if [ ! -e "$LOG_DIR/alerts.jsonl" ]; then
    if getent group adm >/dev/null 2>&1; then
        install -m 0640 -o root -g adm /dev/null "$LOG_DIR/alerts.jsonl"
    else
        install -m 0640 /dev/null "$LOG_DIR/alerts.jsonl"
    fi
fi

# --- 4. GeoIP database ----------------------------------------------------------
if [ -s "$MAXMIND_DB" ]; then
    say "found $MAXMIND_DB (MaxMind); point [geoip] databases in $ETC_DIR/geofence.toml at it if not done yet"
elif [ -s "$FREE_DB" ]; then
    say "GeoIP database present: $FREE_DB (refreshed weekly by geofence-geoip-update.timer)"
    if [ -x "$BIN_DIR/geofencectl" ]; then
        say "  $("$BIN_DIR/geofencectl" check-db "$FREE_DB" 2>&1 | head -1)"
    fi
elif [ "$GEOIP" = 1 ]; then
    say "no GeoIP database found; fetching the free ip-location-db country database"
    say "  (npm package @ip-location-db/geo-whois-asn-country-mmdb: CC0-1.0; data CC BY 4.0, attribution NRO, nro.net)"
    if ! command -v npm >/dev/null 2>&1; then
        say "  npm is not installed; geoip-update will use curl against registry.npmjs.org"
    fi
    GEOFENCECTL="$BIN_DIR/geofencectl" "$LIB_DIR/geoip-update" --free-only --no-reload --dest "$STATE_DIR/geoip" \
        || warn "GeoIP download failed; run $LIB_DIR/geoip-update later. geofenced will not start without a database."
    # Say how old the newest free release is, so a later "older than
    # max_age_days" warning is no surprise.
    if [ -s "$FREE_DB" ] && [ -x "$BIN_DIR/geofencectl" ]; then
        say "  $("$BIN_DIR/geofencectl" check-db "$FREE_DB" 2>&1 | head -1)"
        say "  (the daemon warns when it is older than [geoip] max_age_days in $ETC_DIR/geofence.toml, default 180)"
    fi
else
    warn "no GeoIP database and --no-geoip given: geofenced needs $FREE_DB or $MAXMIND_DB"
fi

# --- 4b. the admin's own nftables file ----------------------------------------
NFT_CONF=$DESTDIR/etc/nftables.conf
if [ -r "$NFT_CONF" ] && grep -Eq '^[[:space:]]*flush[[:space:]]+ruleset' "$NFT_CONF"; then
    if [ "$FIX_NFT" = 1 ]; then
        new_conf=$(mktemp)
        if "$LIB_DIR/nftables-conf-rewrite" "$NFT_CONF" > "$new_conf" \
            && { [ -n "$DESTDIR" ] || nft -c -f "$new_conf"; }; then
            cp -p "$NFT_CONF" "$NFT_CONF.geofence-orig"
            install -m "$(stat -c %a "$NFT_CONF")" "$new_conf" "$NFT_CONF"
            say "rewrote $NFT_CONF: \`flush ruleset\` replaced by deleting only its own tables (original: $NFT_CONF.geofence-orig)"
        else
            warn "could not rewrite $NFT_CONF (see above); left unchanged"
        fi
        rm -f "$new_conf"
    else
        warn "$NFT_CONF starts with \`flush ruleset\`: every \`systemctl restart nftables\` deletes table inet geofence too."
        warn "  geofenced restores it within a fraction of a second (one tamper alert), but nothing is enforced meanwhile."
        warn "  Replace the line by deleting only your own tables (docs/operations.md, \"Coexisting with your firewall\"),"
        warn "  or run this installer again with --fix-nftables-conf to have it done (the original is kept)."
    fi
fi

# --- 5. check and start ------------------------------------------------------
if "$BIN_DIR/geofencectl" check --config "$ETC_DIR/geofence.toml" >/dev/null 2>&1; then
    say "policy $ETC_DIR/geofence.toml is valid"
else
    warn "geofencectl check --config $ETC_DIR/geofence.toml reported problems:"
    "$BIN_DIR/geofencectl" check --config "$ETC_DIR/geofence.toml" >&2 || true
fi

if [ "$START" = 0 ]; then
    say "not starting (--no-start or DESTDIR). Later: systemctl daemon-reload && systemctl enable --now geofenced geofence-geoip-update.timer"
elif [ -d /run/systemd/system ] && [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    systemctl daemon-reload
    sysctl -q -p /etc/sysctl.d/90-geofence.conf 2>/dev/null || true
    systemctl enable --now geofence-geoip-update.timer
    if systemctl is-active --quiet geofenced.service; then
        say "geofenced was running: restarting into the new binary (kernel rules stay in force meanwhile)"
        systemctl restart geofenced.service
    else
        systemctl enable --now geofenced.service
    fi
    systemctl --no-pager --lines=5 status geofenced.service || true
    say "done. Alerts: tail -f /var/log/geofence/alerts.jsonl"
else
    cat <<MSG
==> systemd is not PID 1 here (container or chroot?), so nothing was started.
    Run the daemon in the foreground with:
        sysctl -w net.netfilter.nf_conntrack_acct=1
        $BIN_DIR/geofenced --config $ETC_DIR/geofence.toml
    Reload it with: kill -HUP <pid>. Stopping it leaves the rules in the
    kernel (fail closed); remove them with: geofencectl flush --yes
MSG
fi
