#!/bin/bash
# HTTP nearest k=10 against /health of the same server, with wrk (a C client), on the fixture city: the rate of
# each and the server thread's CPU time per request (from /proc), alternated PAIRS times, then the medians.
#   bash bench/wrk-nearby.sh [REPO_DIR] [LABEL] [PAIRS] [LUA]
#   REPO_DIR built with tsc; needs Debian's wrk. Without LUA every query asks the dense centre (51.5074, -0.1278);
#   with a wrk Lua script (e.g. one cycling query paths) the script picks the paths.
dir=${1:-.}; label=${2:-server}; pairs=${3:-3}; lua=${4:-}
data=$(mktemp -d)
cd $dir
PORT=0 HOST=127.0.0.1 DATA_DIR=$data JWT_SECRET=wrk-secret-0123456789-abcdefghijklmnopqrstuv RATE_PER_SEC=10000000 RATE_BURST=10000000 LOG_LEVEL=warn node dist/api/main.js > $data/out.log 2>&1 &
pid=$!
for i in $(seq 1 60); do grep -q "GeoDispatch on http" $data/out.log && grep -q "tokens:\|try:" $data/out.log && break; sleep 1; done
port=$(grep -o "localhost:[0-9]*" $data/out.log | head -1 | cut -d: -f2)
token=$(node -e "
const c=require('crypto');const b=(o)=>Buffer.from(JSON.stringify(o)).toString('base64url');
const h=b({alg:'HS256',typ:'JWT'});const p=b({sub:'wrk',role:'dispatcher',exp:Math.floor(Date.now()/1000)+3600});
const s=c.createHmac('sha256','wrk-secret-0123456789-abcdefghijklmnopqrstuv').update(h+'.'+p).digest('base64url');console.log(h+'.'+p+'.'+s)")
if [ -n "$lua" ]; then nearby=(-s "$lua" "http://127.0.0.1:$port"); else nearby=("http://127.0.0.1:$port/v1/nearby?lat=51.5074&lng=-0.1278&k=10"); fi
# the server's main thread: user + system clock ticks
ticks() { awk '{print $14+$15}' /proc/$pid/task/$pid/stat; }
# one wrk run: "<requests/s> <µs of server CPU per request>"
measure() {
  local t0=$(ticks); local out=$(wrk -t1 -c32 -d5s "$@"); local t1=$(ticks)
  local rps=$(echo "$out" | grep Requests/sec | awk '{print $2}'); local n=$(echo "$out" | grep "requests in" | awk '{print $1}')
  echo "$rps $(echo "($t1-$t0)*1000000/$(getconf CLK_TCK)/$n" | bc -l)"
}
curl -s -o /dev/null -w "nearby answers %{http_code}\n" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/nearby?lat=51.5074&lng=-0.1278&k=10"
wrk -t1 -c32 -d3s -H "Authorization: Bearer $token" "${nearby[@]}" > /dev/null # warm-up
rows=""
for r in $(seq 1 $pairs); do
  n=$(measure -H "Authorization: Bearer $token" "${nearby[@]}")
  h=$(measure "http://127.0.0.1:$port/health")
  printf "%s nearby %.0f q/s %.1f µs  health %.0f /s %.1f µs\n" $label $n $h
  rows="$rows$n $h\n"
done
printf "$rows" | python3 -c "
import sys, statistics as st
r = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print('$label median: nearby %.0f q/s %.1f µs, health %.0f /s %.1f µs, nearby/health rate %.3f (per pair, median), CPU %.3f' % (
  st.median(x[0] for x in r), st.median(x[1] for x in r), st.median(x[2] for x in r), st.median(x[3] for x in r),
  st.median(x[0] / x[2] for x in r), st.median(x[3] for x in r) / st.median(x[1] for x in r)))"
kill $pid; wait $pid 2>/dev/null; rm -rf $data
