#!/bin/bash
mkdir -p /root/logs
cat > /root/logs/app.log <<'LOG'
2026-12-01 09:00:01 INFO  started
2026-12-01 09:00:02 ERROR disk full on /var
2026-12-01 09:00:03 INFO  retrying
2026-12-01 09:00:04 ERROR request timed out
LOG
echo "2026-12-01 09:00:05 INFO  web ready" > ~/logs/web.log
