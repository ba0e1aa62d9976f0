#!/bin/bash
[ -f /root/logs.tar.gz ] || exit 1
tar tzf /root/logs.tar.gz | grep -q 'logs/app.log' || exit 1
grep -qx 2 /root/count.txt
