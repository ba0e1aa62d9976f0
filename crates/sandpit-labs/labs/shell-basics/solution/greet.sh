#!/bin/bash
# Greets whoever is named as the first argument, or sandpit.
name="${1:-sandpit}"
echo "Hello, $name!"
