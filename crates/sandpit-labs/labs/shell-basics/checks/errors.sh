# Step "grep": errors.txt holds exactly the ERROR lines of logs/app.log, in the log's order.
# Runs in /workspace as the learner. On failure it prints one line saying what is wrong (the
# judge shows it as the message) and exits 1.
exec 2>&1
log=logs/app.log

if [ ! -f "$log" ]; then
    echo "logs/app.log is gone, so errors.txt cannot be compared with it — restart the lab to get it back."
    exit 1
fi
if [ ! -f errors.txt ]; then
    echo "errors.txt does not exist in /workspace yet."
    exit 1
fi
if [ ! -s errors.txt ]; then
    echo "errors.txt is empty: grep found nothing, or the output went elsewhere."
    exit 1
fi

expected=$(grep ERROR "$log")
actual=$(cat errors.txt)
[ "$actual" = "$expected" ] && exit 0

# Say which line is wrong: a line that is not an ERROR line, then an ERROR line that is missing,
# else the same lines in another order or twice.
extra=$(grep -v -n ERROR errors.txt | head -n 1)
if [ -n "$extra" ]; then
    echo "errors.txt line ${extra%%:*} is not an ERROR line: ${extra#*:}"
    exit 1
fi
while IFS= read -r line; do
    if ! grep -qxF -- "$line" errors.txt; then
        echo "errors.txt lacks this ERROR line of logs/app.log (exactly as in the log): $line"
        exit 1
    fi
done <<<"$expected"
n_expected=$(printf '%s\n' "$expected" | wc -l)
n_actual=$(wc -l <errors.txt)
echo "errors.txt has $n_actual lines for the $n_expected ERROR lines of logs/app.log: each must appear once, in the log's order (did you use >> twice?)."
exit 1
