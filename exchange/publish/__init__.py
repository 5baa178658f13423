"""The publish path: verify a batch, check its records exactly, store it, record it,
acknowledge it.
"""
