#!/usr/bin/env bash
# Run a built csmstream image and check what a deployment relies on:
#   the container turns healthy (its HEALTHCHECK: /health/ready), the server answers /health/ready and
#   /health/live and speaks (POST /v1/audio/speech → a wav), it runs as a user other than root, its voices folder is a volume it can write, and
#   `docker stop` (SIGTERM) drains it to exit status 0.
#
#   deploy/docker/smoke_test.sh csmstream:cpu [PORT]
#   DOCKER_RUN_ARGS="-e CSMSTREAM_ENGINE=piper -e CSMSTREAM_DEVICE=cpu" deploy/docker/smoke_test.sh csmstream:gpu
#
# The container uses the host's network (works where Docker has no bridge network) on PORT (default 18431).
set -euo pipefail
image=${1:?usage: smoke_test.sh IMAGE [PORT]}
port=${2:-18431}
name=csmstream-smoke-$$
volume=csmstream-smoke-voices-$$

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

docker run -d --name "$name" --network host -e CSMSTREAM_HOST=127.0.0.1 -e CSMSTREAM_PORT="$port" \
  -v "$volume":/data/voices ${DOCKER_RUN_ARGS:-} "$image" >/dev/null
echo "started $image as $name on port $port"

for _ in $(seq 1 120); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$health" = healthy ] && break
  if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
    docker logs "$name" | tail -30
    echo "FAIL: the container stopped"; exit 1
  fi
  sleep 2
done
[ "$health" = healthy ] || { docker logs "$name" | tail -30; echo "FAIL: not healthy: $health"; exit 1; }
echo "ok: HEALTHCHECK says healthy"

ready=$(curl -fsS "http://127.0.0.1:$port/health/ready")
live=$(curl -fsS "http://127.0.0.1:$port/health/live")
echo "ok: /health/ready $ready, /health/live $live"

wav=$(mktemp)
curl -fsS -o "$wav" -H 'content-type: application/json' "http://127.0.0.1:$port/v1/audio/speech" \
  -d '{"model": "csm", "input": "Hello from the container.", "voice": "default", "response_format": "wav"}'
bytes=$(wc -c <"$wav"); rm -f "$wav"
[ "$bytes" -gt 10000 ] || { echo "FAIL: the speech was $bytes bytes"; exit 1; }
echo "ok: POST /v1/audio/speech gave a wav of $bytes bytes"

uid=$(docker exec "$name" id -u)
[ "$uid" != 0 ] || { echo "FAIL: runs as root"; exit 1; }
echo "ok: runs as uid $uid ($(docker exec "$name" id -un))"

docker exec "$name" sh -c 'touch /data/voices/.write-test && rm /data/voices/.write-test'
echo "ok: the voices volume is writable by the server's user"

start=$(date +%s)
docker stop -t 40 "$name" >/dev/null
status=$(docker inspect -f '{{.State.ExitCode}}' "$name")
echo "stopped in $(( $(date +%s) - start )) s, exit status $status"
docker logs "$name" 2>&1 | grep -q "draining: new requests are refused" \
  || { docker logs "$name" | tail -20; echo "FAIL: no drain in the log"; exit 1; }
[ "$status" = 0 ] || { docker logs "$name" | tail -20; echo "FAIL: exit status $status"; exit 1; }
echo "ok: SIGTERM drained the server and it exited 0"
echo "PASS"
