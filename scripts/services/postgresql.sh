#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1:5432 for the catalog tests: installed and started when missing, with a test role.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ -z "$version" ]; then
    echo "postgresql: no cluster configured" >&2
    exit 1
fi
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 50); do
    runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break
    sleep 0.2
done
runuser -u postgres -- psql -qAt >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ashvault_test') THEN
    CREATE ROLE ashvault_test LOGIN CREATEDB PASSWORD 'ashvault_test';
  END IF;
END $$;
SQL
echo "postgresql $version: ready on 127.0.0.1:5432 (role ashvault_test)"
