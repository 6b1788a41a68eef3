#!/usr/bin/env bash
# Services the tests need, installed from Debian's packages when missing.
set -euo pipefail
