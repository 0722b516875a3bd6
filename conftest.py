"""Test-session settings shared by tests/, docs/ and doctests: trained feature networks go to a scratch cache."""

import os
import tempfile

# Feature classifiers are trained once per session into a temporary cache, never into the user's ~/.cache.
os.environ.setdefault("TTUR_CACHE_DIR", tempfile.mkdtemp(prefix="ttur-cache-"))
