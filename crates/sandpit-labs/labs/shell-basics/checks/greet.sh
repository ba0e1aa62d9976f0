# Step "script": ./greet.sh is executable and, without arguments, prints exactly "Hello, sandpit!".
# Runs in /workspace as the learner. On failure it prints one line saying what is wrong (the
# judge shows it as the message) and exits 1.
exec 2>&1

if [ ! -f greet.sh ]; then
    echo "greet.sh does not exist in /workspace."
    exit 1
fi
if [ ! -x greet.sh ]; then
    echo "greet.sh is not executable: ls -l shows $(ls -l greet.sh | cut -c1-10), with no x."
    exit 1
fi

if grep -q $'\r' greet.sh; then
    echo "greet.sh has Windows line endings (CR LF): the system looks for a program named 'bash' plus an invisible CR. Remove them with: sed -i 's/\\r\$//' greet.sh"
    exit 1
fi

out=$(timeout 3 ./greet.sh </dev/null 2>&1)
status=$?
shown=$(printf '%s' "$out" | head -c 200)
shown=${shown//$'\n'/\\n}
if [ "$status" -eq 124 ]; then
    echo "./greet.sh did not finish within 3 seconds: does it wait for input (read) or loop?"
    exit 1
fi
# timeout(1) says "failed to run command" when the kernel refused to start the file itself.
if [[ "$out" == *"failed to run command"* ]]; then
    echo "./greet.sh could not start: the shebang on line 1 must name a program that exists, such as /bin/bash."
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "./greet.sh failed with exit status $status: $shown"
    exit 1
fi
if [ "$out" != "Hello, sandpit!" ]; then
    echo "./greet.sh printed '$shown' — expected exactly 'Hello, sandpit!'"
    exit 1
fi
