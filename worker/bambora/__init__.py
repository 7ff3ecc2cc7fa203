"""Bambora: everything that speaks to the API: URLs and replies (api), tokens
(auth) and the one retry wait (backoff).
"""
