#!/usr/bin/env bash
# Instructions per proxied request (user space, every gateway thread), the figure
# benches/README.md tracks: the release gateway under callgrind, pinned to one CPU, behind a
# fixed-answer upstream; 300 warm-up requests over one keep-alive connection, a dump, then
# N more and a second dump: the second dump's total / N.
#
#   benches/callgrind/run.sh            # auth: none and DPoP ES256, N=2000
#   N=500 benches/callgrind/run.sh none # one case
#   benches/callgrind/run.sh explorer   # DPoP ES256 with explorer.enabled (recording each one)
#   benches/callgrind/run.sh decide     # DPoP ES256 decisions asked of forward_auth.listen
#                                       # (Envoy style: the decision request is the request)
#   benches/callgrind/run.sh decide_none # decisions for an `auth: none` path: no checks and
#                                       # no upstream hop, so `none` - `decide_none` is the hop
#   GATEWAY_BIN=/tmp/old/dpop-gateway KEEP=/tmp/cg-old benches/callgrind/run.sh none
#     # another build (no cargo build), the measured dump kept as /tmp/cg-old/none.out for
#     # `callgrind_annotate` (a per-function before/after diff)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
WARM=300
CASES=${*:-none dpop}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# GATEWAY_BIN=path: measure that build instead (e.g. the bench profile's, which cargo bench
# just built: same code, line tables only), without building.
bin=${GATEWAY_BIN:-target/release/dpop-gateway}
[ -n "${GATEWAY_BIN:-}" ] || cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port)
python3 benches/callgrind/upstream.py "$up" &
for case in $CASES; do
  port=$(free_port); admin=$(free_port); decide=$(free_port)
  auth=dpop; case $case in none|decide_none) auth=none ;; esac
  extra=""
  [ "$case" = explorer ] && extra="explorer: { enabled: true }"
  case $case in decide*) extra="forward_auth: { listen: \"127.0.0.1:$decide\" }" ;; esac
  cat > "$work/gw.yaml" <<YAML
listen: "127.0.0.1:$port"
admin_listen: "127.0.0.1:$admin"
upstream: { url: "http://127.0.0.1:$up" }
routes: [{ path_prefix: "/", auth: $auth }]
access_token:
  issuer: "https://as.example.com"
  audience: "https://api.example.com"
  jwks_file: config/demo/jwks.json
# Minting 2,300 proofs and sending them through callgrind takes minutes: the default 60 s
# would refuse the last ones as stale (and the measurement would count refusals).
dpop: { proof_max_age: 30m }
$extra
YAML
  RUST_LOG=info taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$bin" run -c "$work/gw.yaml" 2>"$work/gw.log" &
  vg=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$admin/healthz" && break; sleep 0.2; done
  if [ "$case" = explorer ]; then
    # Off by default: prove it is on, or the figure is the plain DPoP one.
    curl -sf -o /dev/null "http://127.0.0.1:$admin/explorer/decisions.json" \
      || { echo "explorer: /explorer/decisions.json does not answer" >&2; trap - EXIT; exit 1; }
  fi
  url="http://127.0.0.1:$port/r"
  case $case in decide*) url="http://127.0.0.1:$decide/r" ;; esac
  total=$((WARM + N))
  if [ "$auth" = dpop ]; then
    "$bin" keygen --alg ES256 > "$work/client.jwk"
    token=$("$bin" token --issuer-key config/demo/issuer-key.jwk --bind "$work/client.jwk" --aud https://api.example.com --ttl 3600)
    : > "$work/curl.cfg"
    for i in $(seq "$total"); do
      printf 'url = "%s"\noutput = /dev/null\nheader = "Authorization: DPoP %s"\nheader = "DPoP: %s"\n' \
        "$url" "$token" "$("$bin" proof --key "$work/client.jwk" --method GET --url "$url" --token "$token")" >> "$work/curl.cfg"
    done
    # `next` between requests: each URL its own options (without it, curl sends every header
    # on every request); not after the last (an empty request is an error).
    blocks() { awk 'NR > 1 && (NR - 1) % 4 == 0 { print "next" } { print }'; }
    head -n $((4 * WARM)) "$work/curl.cfg" | blocks > "$work/warm.cfg"
    tail -n +$((4 * WARM + 1)) "$work/curl.cfg" | blocks > "$work/meas.cfg"
    curl -s -K "$work/warm.cfg"; callgrind_control -d "$vg" >/dev/null
    curl -s -K "$work/meas.cfg"; callgrind_control -d "$vg" >/dev/null
  else
    curl -s -o /dev/null "$url?[1-$WARM]"; callgrind_control -d "$vg" >/dev/null
    curl -s -o /dev/null "$url?[1-$N]"; callgrind_control -d "$vg" >/dev/null
  fi
  kill -INT "$vg"; wait "$vg" 2>/dev/null || true
  second=$(ls "$work"/cg.out.* | sort -t. -k3 -n | sed -n 2p)
  ir=$(grep -m1 '^summary:\|^totals:' "$second" | awk '{print $2}')
  # Every request must have been forwarded, or the figure is not a proxied request's.
  forwarded=$(grep -c 'forwarded' "$work/gw.log" || true)
  if [ "${forwarded:-0}" -lt "$total" ]; then
    echo "$case: only ${forwarded:-0} of $total requests forwarded; see $work/gw.log" >&2
    trap - EXIT; exit 1
  fi
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$second" "$KEEP/$case.out"; fi
  printf '%-8s %8d instructions per request (%s requests, second dump %s)\n' "$case" $((ir / N)) "$N" "$(basename "$second")"
  rm -f "$work"/cg.out*
done
