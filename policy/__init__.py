"""The AlphaPulse CrossGuard policy pack (see prod_guard.py); a package so tests can import it."""
