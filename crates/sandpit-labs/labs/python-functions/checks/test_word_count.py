"""Step "word-count": the judge's cases for text_tools.word_count.

Run by the judge as `/usr/bin/python3 -c <this file>` in /workspace, as the learner. On failure it
prints one line per failing case (the judge shows them as the message) and exits 1.
"""

import json
import os
import signal
import sys
import traceback

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the learner's workspace
# The judge shows what this script prints (stdout and stderr) as the message, so what the
# learner's code prints goes nowhere, and this script writes its verdict to OUT.
OUT = sys.stdout
sys.stdout = sys.stderr = open(os.devnull, "w")

CASES = [
    ("The cat and the hat.", {"the": 2, "cat": 1, "and": 1, "hat": 1}),
    ("Hello, hello world!", {"hello": 2, "world": 1}),
    ("", {}),
    ("one\ttwo\nthree  one", {"one": 2, "two": 1, "three": 1}),
    ("Wait... what?!", {"wait": 1, "what": 1}),
    ("don't stop", {"don't": 1, "stop": 1}),
    ('"Quoted" (parens) e-mail', {"quoted": 1, "parens": 1, "e-mail": 1}),
    ("- -- ...", {}),
]
SECONDS_PER_CASE = 2


class TooSlow(Exception):
    pass


def on_alarm(_signum, _frame):
    raise TooSlow


def fail(message):
    print(message, file=OUT)
    sys.exit(1)


def call(arg):
    return f"word_count({json.dumps(arg, ensure_ascii=False)})"


def where(exc):
    """' (text_tools.py line N)' for the deepest frame of the learner's file, if any."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith("text_tools.py")]
    return f" (text_tools.py line {lines[-1]})" if lines else ""


def load():
    try:
        import text_tools
    except ModuleNotFoundError as e:
        if e.name == "text_tools":
            fail("text_tools.py is missing from /workspace.")
        fail(f"importing text_tools.py failed: {e}")
    except SyntaxError as e:
        fail(f"{os.path.basename(e.filename or 'text_tools.py')} line {e.lineno}: syntax error: {e.msg}")
    except TooSlow:
        fail(f"importing text_tools.py did not finish within {SECONDS_PER_CASE} s — does code at the top level loop or wait for input()?")
    except Exception as e:  # the learner's module may raise anything at import time
        fail(f"importing text_tools.py raised {type(e).__name__}: {e}{where(e)}")
    fn = getattr(text_tools, "word_count", None)
    if not callable(fn):
        fail("text_tools.py has no function named word_count.")
    return fn


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(SECONDS_PER_CASE)
    word_count = load()
    signal.alarm(0)
    failures = []
    for arg, expected in CASES:
        signal.alarm(SECONDS_PER_CASE)
        try:
            got = word_count(arg)
        except TooSlow:
            failures.append(f"{call(arg)} did not return within {SECONDS_PER_CASE} s — is there an endless loop?")
            continue
        except NotImplementedError:
            fail("word_count is not written yet: it raises NotImplementedError.")
        except Exception as e:
            failures.append(f"{call(arg)} raised {type(e).__name__}: {e}{where(e)} — expected {expected!r}")
            continue
        finally:
            signal.alarm(0)
        if got is None:
            failures.append(f"{call(arg)} returned None — expected {expected!r} (a missing return?)")
        elif not isinstance(got, dict):
            failures.append(f"{call(arg)} returned a {type(got).__name__}, {got!r} — expected a dict, {expected!r}")
        elif got != expected:
            failures.append(f"{call(arg)} returned {dict(got)!r} — expected {expected!r}")
    if failures:
        print("\n".join(failures), file=OUT)
        sys.exit(1)


try:
    main()
except Exception as e:  # a bug of this script, or something the learner's code broke
    print(f"the judge's test stopped unexpectedly: {type(e).__name__}: {e}", file=OUT)
    sys.exit(1)
