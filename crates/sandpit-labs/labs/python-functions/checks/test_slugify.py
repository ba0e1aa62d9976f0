"""Step "slugify": the judge's cases for text_tools.slugify.

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
    ("Hello World", "hello-world"),
    ("Hello, World!", "hello-world"),
    ("  Python 3.12 is out  ", "python-3-12-is-out"),
    ("Rock & Roll", "rock-roll"),
    ("snake_case_name", "snake-case-name"),
    ("--Already--a--slug--", "already-a-slug"),
    ("ALL CAPS", "all-caps"),
    ("", ""),
    ("?!", ""),
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
    return f"slugify({json.dumps(arg, ensure_ascii=False)})"


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
    fn = getattr(text_tools, "slugify", None)
    if not callable(fn):
        fail("text_tools.py has no function named slugify.")
    return fn


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(SECONDS_PER_CASE)
    slugify = load()
    signal.alarm(0)
    failures = []
    for arg, expected in CASES:
        signal.alarm(SECONDS_PER_CASE)
        try:
            got = slugify(arg)
        except TooSlow:
            failures.append(f"{call(arg)} did not return within {SECONDS_PER_CASE} s — is there an endless loop?")
            continue
        except NotImplementedError:
            fail("slugify is not written yet: it raises NotImplementedError.")
        except Exception as e:
            failures.append(f"{call(arg)} raised {type(e).__name__}: {e}{where(e)} — expected {expected!r}")
            continue
        finally:
            signal.alarm(0)
        if got is None:
            failures.append(f"{call(arg)} returned None — expected {expected!r} (a missing return?)")
        elif got != expected:
            failures.append(f"{call(arg)} returned {got!r} — expected {expected!r}")
    if failures:
        print("\n".join(failures), file=OUT)
        sys.exit(1)


try:
    main()
except Exception as e:  # a bug of this script, or something the learner's code broke
    print(f"the judge's test stopped unexpectedly: {type(e).__name__}: {e}", file=OUT)
    sys.exit(1)
