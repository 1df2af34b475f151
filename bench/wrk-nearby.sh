#!/bin/bash
# HTTP nearest k=10 against /health of the same server, with wrk (a C client), on the fixture city.
#   bash bench/wrk-nearby.sh [REPO_DIR] [LABEL]     (REPO_DIR built with tsc; needs Debian's wrk)
dir=${1:-.}; label=${2:-server}
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
curl -s -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/nearby?lat=51.5074&lng=-0.1278&k=10"
for r in 1 2 3; do
  n=$(wrk -t1 -c32 -d6s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/nearby?lat=51.5074&lng=-0.1278&k=10" | grep Requests/sec | awk '{print $2}')
  h=$(wrk -t1 -c32 -d6s "http://127.0.0.1:$port/health" | grep Requests/sec | awk '{print $2}')
  echo "$label nearby $n health $h"
done
kill $pid; wait $pid 2>/dev/null; rm -rf $data
