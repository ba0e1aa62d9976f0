"""Small text helpers for a blog: URL slugs and word counts.

Run the examples in a Python shell:

    $ python3
    >>> from text_tools import slugify
    >>> slugify("Hello, World!")
    'hello-world'
"""

import re
import string


def slugify(title):
    """Turn a title into a URL slug.

    - lower case;
    - every run of characters that are not ASCII letters or digits (a-z, 0-9) becomes a single "-";
    - no "-" at the start or the end.

    slugify("Hello, World!")          -> "hello-world"
    slugify("  Python 3.12 is out ")  -> "python-3-12-is-out"
    slugify("snake_case_name")        -> "snake-case-name"
    """
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def word_count(text):
    """Count how often each word appears in text.

    - words are separated by whitespace (spaces, tabs, new lines);
    - punctuation at the start or end of a word is not part of it (string.punctuation);
    - case does not matter: "The" and "the" are the same word, counted as "the";
    - a "word" made only of punctuation (like "-") is not a word.

    Returns a dict: word -> number of times it appears.

    word_count("The cat and the hat.")  -> {"the": 2, "cat": 1, "and": 1, "hat": 1}
    word_count("")                      -> {}
    """
    counts = {}
    for raw in text.split():
        word = raw.strip(string.punctuation).lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts
