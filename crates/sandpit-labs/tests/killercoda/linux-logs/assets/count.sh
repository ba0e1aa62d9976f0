#!/bin/bash
# Prints how many ERROR lines the file $1 holds.
grep -c ERROR "$1"
