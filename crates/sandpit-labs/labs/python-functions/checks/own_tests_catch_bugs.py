"""Step "own-tests": the learner's tests fail when text_tools has a typical bug.

Each mutant is the learner's own text_tools module with one function swapped for a plausible
wrong version; the learner's tests must fail (or error) against every mutant. Run by the judge as
`/usr/bin/python3 -c <this file>` in /workspace, as the learner. On failure it prints one line per
bug the tests let through (the judge shows them as the message) and exits 1.
"""

import importlib
import io
import signal
import os
import string
import sys
import types
import unittest

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the learner's workspace
# The judge shows what this script prints (stdout and stderr) as the message, so what the
# learner's code prints goes nowhere, and this script writes its verdict to OUT.
OUT = sys.stdout
sys.stdout = sys.stderr = open(os.devnull, "w")


def slugify_spaces_only(title):
    return title.lower().replace(" ", "-")


def slugify_dashes_at_ends(title):
    out = "".join(c if c.isascii() and c.isalnum() else "-" for c in title.lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out


def word_count_case_sensitive(text):
    counts = {}
    for raw in text.split():
        word = raw.strip(string.punctuation)
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def word_count_keeps_punctuation(text):
    counts = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


# (function, its buggy version, the bug in words, a test that would catch it)
MUTANTS = [
    ("slugify", slugify_spaces_only,
     "a slugify that only lower-cases and turns spaces into dashes",
     'slugify("Hello, World!") == "hello-world"'),
    ("slugify", slugify_dashes_at_ends,
     "a slugify that leaves dashes at the start and end",
     'slugify("  Hello, World!  ") == "hello-world"'),
    ("word_count", word_count_case_sensitive,
     'a word_count that counts "The" and "the" as two words',
     'word_count("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}'),
    ("word_count", word_count_keeps_punctuation,
     'a word_count that keeps punctuation ("hat." instead of "hat")',
     'word_count("Hello, hello!") == {"hello": 2}'),
]


SECONDS = 20


def fail(message):
    print(message, file=OUT)
    sys.exit(1)


def run_tests_against(module):
    """Runs the learner's tests with `module` standing in for text_tools: did they all pass?"""
    sys.modules["text_tools"] = module
    sys.modules.pop("test_text_tools", None)
    tests = importlib.import_module("test_text_tools")
    suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    return result.testsRun > 0 and result.wasSuccessful()


def on_alarm(_signum, _frame):
    # os._exit, not sys.exit: unittest would catch SystemExit as one more failing test.
    print(f"your tests did not finish within {SECONDS} s — does a test wait for input or loop forever?", file=OUT, flush=True)
    os._exit(1)


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(SECONDS)
    try:
        real = importlib.import_module("text_tools")
        passes = run_tests_against(real)
    except Exception:
        passes = False
    if not passes:
        fail("cannot tell whether your tests catch bugs until they pass against your own text_tools.py (see the other failure).")
    escaped = []
    for name, buggy, bug, example in MUTANTS:
        mutant = types.ModuleType("text_tools")
        mutant.__dict__.update(vars(real))
        setattr(mutant, name, buggy)
        if run_tests_against(mutant):
            escaped.append(f"your tests still pass against {bug} — add a test such as {example}")
    if escaped:
        print("\n".join(escaped), file=OUT)
        sys.exit(1)


try:
    main()
except Exception as e:  # a bug of this script, or something the learner's code broke
    print(f"the judge's test stopped unexpectedly: {type(e).__name__}: {e}", file=OUT)
    sys.exit(1)
