"""Step "own-tests": test_text_tools.py has at least MIN_TESTS tests and they all pass.

Run by the judge as `/usr/bin/python3 -c <this file>` in /workspace, as the learner. On failure it
prints one line per problem (the judge shows them as the message) and exits 1.
"""

import importlib
import io
import os
import signal
import sys
import traceback
import unittest

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the learner's workspace
# The judge shows what this script prints (stdout and stderr) as the message, so what the
# learner's code prints goes nowhere, and this script writes its verdict to OUT.
OUT = sys.stdout
sys.stdout = sys.stderr = open(os.devnull, "w")

MIN_TESTS = 4
SECONDS = 15


def fail(message):
    print(message, file=OUT)
    sys.exit(1)


def on_alarm(_signum, _frame):
    # os._exit, not sys.exit: unittest would catch SystemExit as one more failing test.
    print(f"your tests did not finish within {SECONDS} s — does a test wait for input or loop forever?", file=OUT, flush=True)
    os._exit(1)


def load_tests():
    if not os.path.isfile("test_text_tools.py"):
        fail("test_text_tools.py does not exist in /workspace yet.")
    try:
        module = importlib.import_module("test_text_tools")
    except SyntaxError as e:
        fail(f"{os.path.basename(e.filename or 'test_text_tools.py')} line {e.lineno}: syntax error: {e.msg}")
    except Exception as e:  # the learner's module may raise anything at import time
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith(".py")]
        at = f" ({os.path.basename(frames[-1].filename)} line {frames[-1].lineno})" if frames else ""
        fail(f"importing test_text_tools.py raised {type(e).__name__}: {e}{at}")
    return unittest.defaultTestLoader.loadTestsFromModule(module)


def first_line_of_error(tb_text):
    """The exception line of a formatted traceback, e.g. "AssertionError: 'a' != 'b'"."""
    lines = tb_text.strip().splitlines()
    frames = [i for i, ln in enumerate(lines) if ln.startswith("  File ")]
    after = lines[frames[-1] + 1:] if frames else lines
    for ln in after:
        if ln and not ln.startswith(" "):
            return ln[:200]
    return lines[-1][:200] if lines else "?"


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(SECONDS)  # covers importing the tests (and text_tools) and running them
    suite = load_tests()
    count = suite.countTestCases()
    if count < MIN_TESTS:
        fail(
            f"test_text_tools.py has {count} test{'' if count == 1 else 's'} — write at least {MIN_TESTS}: "
            "methods whose names start with test_, in a class that extends unittest.TestCase."
        )
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    signal.alarm(0)
    problems = [(t, "failed", tb) for t, tb in result.failures] + [(t, "raised", tb) for t, tb in result.errors]
    if problems:
        for test, how, tb in problems:
            name = test.id().removeprefix("test_text_tools.")
            print(f"{name} {how}: {first_line_of_error(tb)}", file=OUT)
        sys.exit(1)
    ran = result.testsRun - len(result.skipped)
    if ran < MIN_TESTS:
        fail(f"only {ran} of your tests ran ({len(result.skipped)} skipped) — at least {MIN_TESTS} must run and pass.")


try:
    main()
except Exception as e:  # a bug of this script, or something the learner's code broke
    print(f"the judge's test stopped unexpectedly: {type(e).__name__}: {e}", file=OUT)
    sys.exit(1)
