#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer, as the tests need.
# Starts them if they are installed but not running, then waits for both (at most 30 s).
set -euo pipefail

host=127.0.0.1
pg_port=5432
redis_port=6379
timeout=30

pg_ready() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$host" -p "$pg_port"
    else
        (exec 3<>"/dev/tcp/$host/$pg_port") 2>/dev/null
    fi
}

redis_ready() {
    if command -v redis-cli >/dev/null; then
        [[ "$(redis-cli -h "$host" -p "$redis_port" ping 2>/dev/null)" == PONG ]]
    else
        local reply
        reply="$( (exec 3<>"/dev/tcp/$host/$redis_port" && printf 'PING\r\n' >&3 &&
            read -r -t 2 line <&3 && printf '%s' "$line") 2>/dev/null)" || return 1
        [[ "$reply" == "+PONG"* ]]
    fi
}

if ! pg_ready; then
    if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
        # The newest installed version's "main" cluster.
        version="$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -printf '%h\n' |
            xargs -rn1 basename | sort -V | tail -n1)"
        if [[ -n "$version" ]]; then
            echo "Starting PostgreSQL $version (cluster main)"
            pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
                echo "warning: pg_ctlcluster $version main start failed" >&2
        fi
    fi
fi

if ! redis_ready; then
    if command -v redis-server >/dev/null; then
        echo "Starting Redis"
        redis-server --daemonize yes --bind "$host" --port "$redis_port" --save "" \
            --appendonly no >/dev/null ||
            echo "warning: redis-server failed to start" >&2
    fi
fi

deadline=$((SECONDS + timeout))
while true; do
    pg_ok=0
    redis_ok=0
    pg_ready && pg_ok=1
    redis_ready && redis_ok=1
    if ((pg_ok && redis_ok)); then
        break
    fi
    if ((SECONDS >= deadline)); then
        ((pg_ok)) || echo "error: PostgreSQL does not answer on $host:$pg_port after ${timeout}s." \
            "Install it (apt-get install postgresql) or start it; the tests connect as user" \
            "postgres without a password (trust)." >&2
        ((redis_ok)) || echo "error: Redis does not answer on $host:$redis_port after ${timeout}s." \
            "Install it (apt-get install redis-server) or start it." >&2
        exit 1
    fi
    sleep 0.5
done
echo "PostgreSQL ($host:$pg_port) and Redis ($host:$redis_port) are up."
