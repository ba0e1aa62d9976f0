#!/bin/bash
# errors.txt holds exactly the two ERROR lines of app.log.
[ -f /root/errors.txt ] || exit 1
[ "$(wc -l < /root/errors.txt)" -eq 2 ] || exit 1
grep -q "disk full" ~/errors.txt
