"""Tests for text_tools. Run them with: python3 -m unittest -v"""

import unittest

from text_tools import slugify, word_count


class SlugifyTest(unittest.TestCase):
    def test_lower_case_words_joined_by_dashes(self):
        self.assertEqual(slugify("Hello World"), "hello-world")

    def test_punctuation_becomes_one_dash(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_no_dashes_at_the_ends(self):
        self.assertEqual(slugify("  --Hi there--  "), "hi-there")

    def test_digits_stay_underscores_go(self):
        self.assertEqual(slugify("snake_case 3.12"), "snake-case-3-12")


class WordCountTest(unittest.TestCase):
    def test_counts_words_whatever_their_case(self):
        self.assertEqual(word_count("The cat and the hat"), {"the": 2, "cat": 1, "and": 1, "hat": 1})

    def test_punctuation_is_not_part_of_a_word(self):
        self.assertEqual(word_count("Hello, hello!"), {"hello": 2})

    def test_no_words(self):
        self.assertEqual(word_count(""), {})
        self.assertEqual(word_count("  -- "), {})


if __name__ == "__main__":
    unittest.main()
