#!/bin/bash
# geoip-update: refresh Geofence's free GeoIP country database.
#
# Installed as /usr/local/lib/geofence/geoip-update and run weekly by
# geofence-geoip-update.timer. Fetches the npm package
# @ip-location-db/geo-whois-asn-country-mmdb (package CC0-1.0; data from the
# five RIRs, CC BY 4.0, attribution: NRO, https://www.nro.net), checks it
# (size, metadata marker, then `geofencectl check-db`: the daemon's own
# verified loader; a file it would refuse is never installed), and
# atomically replaces /var/lib/geofence/geoip/geo-whois-asn-country.mmdb
# (the previous file is kept as *.prev). If the file changed, geofenced is
# asked to reload (SIGHUP via `systemctl try-reload-or-restart`).
#
# If MaxMind's geoipupdate is installed and /etc/GeoIP.conf holds an account,
# geoipupdate is run instead (it writes /var/lib/GeoIP/).
#
# GEOFENCECTL names the geofencectl binary (default: the one on PATH, else
# /usr/local/bin/geofencectl).
#
# Usage: geoip-update [--dest DIR] [--no-reload] [--free-only] [--help]
set -euo pipefail

PKG="@ip-location-db/geo-whois-asn-country-mmdb"
FILE="geo-whois-asn-country.mmdb"
DEST_DIR="/var/lib/geofence/geoip"
RELOAD=1
FREE_ONLY=0
# The real file is ~8 MB; anything under 1 MB is a broken download.
MIN_SIZE=1000000

say() { printf 'geoip-update: %s\n' "$*"; }
die() { printf 'geoip-update: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dest) [ $# -ge 2 ] || die "--dest needs a directory"; DEST_DIR="$2"; shift 2 ;;
        --no-reload) RELOAD=0; shift ;;
        --free-only) FREE_ONLY=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done

reload_daemon() {
    [ "$RELOAD" = 1 ] || return 0
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet geofenced.service; then
            say "asking geofenced to reload the database"
            # ExecReload= waits for the daemon's answer: a refused database
            # fails here, and the daemon keeps the one it runs with.
            systemctl try-reload-or-restart geofenced.service \
                || say "warning: geofenced refused the reload (journalctl -u geofenced -p err); it keeps running with the previous database"
        fi
    fi
}

# MaxMind path, only when it is really configured (not the template file).
if [ "$FREE_ONLY" = 0 ] && command -v geoipupdate >/dev/null 2>&1 \
    && [ -r /etc/GeoIP.conf ] && grep -Eq '^[[:space:]]*AccountID[[:space:]]+[0-9]+[[:space:]]*$' /etc/GeoIP.conf \
    && ! grep -Eq '^[[:space:]]*AccountID[[:space:]]+0+[[:space:]]*$' /etc/GeoIP.conf; then
    say "running MaxMind geoipupdate (/etc/GeoIP.conf)"
    geoipupdate -v
    reload_daemon
    exit 0
fi

GEOFENCECTL=${GEOFENCECTL:-$(command -v geofencectl || echo /usr/local/bin/geofencectl)}

mmdb_ok() {
    # Size floor plus the MaxMind DB metadata marker near the end of the file,
    # then the daemon's own loader (search tree, data section, record types).
    local f="$1" size
    size=$(stat -c %s "$f") || return 1
    [ "$size" -ge "$MIN_SIZE" ] || { say "rejected $f: only $size bytes"; return 1; }
    tail -c 131072 "$f" | LC_ALL=C grep -qaF "$(printf '\253\315\357MaxMind.com')" \
        || { say "rejected $f: no MaxMind DB metadata marker"; return 1; }
    [ -x "$GEOFENCECTL" ] || { say "rejected $f: $GEOFENCECTL (geofencectl check-db) is not installed"; return 1; }
    "$GEOFENCECTL" check-db "$f" || { say "rejected $f: geofenced's loader refuses it"; return 1; }
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/geofence-geoip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if command -v npm >/dev/null 2>&1; then
    say "fetching $PKG with npm pack"
    # A throw-away cache: weekly 7 MB downloads must not pile up.
    tgz=$(cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" "$PKG" | tail -n 1)
    tgz="$tmp/$tgz"
else
    # No npm (it is not installed by default on Debian): ask the npm registry
    # for the latest version's tarball and its SHA-1, as npm itself would.
    command -v curl >/dev/null 2>&1 || die "neither npm nor curl is installed"
    say "npm not found; fetching $PKG from registry.npmjs.org with curl"
    meta=$(curl -fsSL --proto '=https' --max-time 60 \
        "https://registry.npmjs.org/$PKG/latest") || die "registry metadata download failed"
    url=$(printf '%s' "$meta" | grep -o '"tarball":"[^"]*"' | head -n 1 | cut -d'"' -f4)
    sha=$(printf '%s' "$meta" | grep -o '"shasum":"[0-9a-f]\{40\}"' | head -n 1 | cut -d'"' -f4)
    case "$url" in https://registry.npmjs.org/*) ;; *) die "unexpected tarball URL: '$url'" ;; esac
    [ -n "$sha" ] || die "registry metadata has no shasum"
    tgz="$tmp/pkg.tgz"
    curl -fsSL --proto '=https' --max-time 600 -o "$tgz" "$url" || die "download failed: $url"
    echo "$sha  $tgz" | sha1sum -c --quiet - || die "checksum mismatch for $url"
fi

[ -s "$tgz" ] || die "download produced no file"
tar -xzf "$tgz" -C "$tmp" package/package.json package/NRO_LICENSE "package/$FILE" 2>/dev/null \
    || tar -xzf "$tgz" -C "$tmp" || die "cannot unpack $tgz"
new="$tmp/package/$FILE"
[ -f "$new" ] || die "package does not contain $FILE"
mmdb_ok "$new" || die "downloaded database failed its checks; keeping the current one"
version=$(grep -o '"version": *"[^"]*"' "$tmp/package/package.json" 2>/dev/null | head -n 1 | cut -d'"' -f4 || true)

mkdir -p "$DEST_DIR"
chmod 0755 "$DEST_DIR"
dest="$DEST_DIR/$FILE"
if [ -f "$dest" ] && cmp -s "$new" "$dest"; then
    say "$dest is already current (version ${version:-unknown}); nothing to do"
    exit 0
fi
install -m 0644 "$new" "$DEST_DIR/.$FILE.new"
if [ -f "$dest" ]; then
    cp -p "$dest" "$dest.prev"
fi
# rename(2) is atomic: a reader sees the old or the new file, never half.
mv -f "$DEST_DIR/.$FILE.new" "$dest"
if [ -f "$tmp/package/NRO_LICENSE" ]; then
    install -m 0644 "$tmp/package/NRO_LICENSE" "$DEST_DIR/NRO_LICENSE"
fi
cat > "$DEST_DIR/ATTRIBUTION" <<ATTR
$FILE: npm package $PKG version ${version:-unknown}
fetched $(date -u +%Y-%m-%dT%H:%M:%SZ) by geoip-update.
Package licence CC0-1.0 (sapics/ip-location-db). Data derived from the five
Regional Internet Registries' WHOIS and IP-ASN-country data, CC BY 4.0,
attribution: NRO (Number Resource Organization), https://www.nro.net.
The publisher warns that some entries are wrong: not an authority.
ATTR
say "installed $dest ($(stat -c %s "$dest") bytes, version ${version:-unknown})"
reload_daemon
