"""The one error type the pki raises for bad input.

Messages name the offending setting and what is allowed, and never contain key material or the
seed: callers print them as they are, without a traceback.
"""


class PkiError(ValueError):
    """Input the pki cannot turn into valid key material."""
