#!/usr/bin/env bash
# RabbitMQ on 127.0.0.1:5672 (guest/guest) for the backup-worker tests: installed and started when missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if ! command -v rabbitmqctl >/dev/null; then
    apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 rabbitmq-server >/dev/null
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    mkdir -p /etc/rabbitmq
    [ -f /etc/rabbitmq/rabbitmq-env.conf ] || echo "NODE_IP_ADDRESS=127.0.0.1" >/etc/rabbitmq/rabbitmq-env.conf
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        systemctl start rabbitmq-server
    else
        (setsid rabbitmq-server >/var/log/rabbitmq/ashvault-start.log 2>&1 &)
    fi
    rabbitmqctl -q wait --timeout 120 /var/lib/rabbitmq/mnesia/rabbit@"$(hostname -s)".pid >/dev/null 2>&1 || true
fi
for _ in $(seq 120); do
    rabbitmqctl -q status >/dev/null 2>&1 && break
    sleep 0.5
done
rabbitmqctl -q status >/dev/null || { echo "rabbitmq: did not start" >&2; exit 1; }
echo "rabbitmq: ready on 127.0.0.1:5672"
