"""Input: bytes of a file or pipe -> physical lines -> rows -> admitted rows.

source opens and reads (once per pass; fingerprint makes a file's second pass read
exactly what its first pass counted), lines splits, header reads the CSV header,
rows parses CSV/JSONL, validate applies the row rules, admission decides per row
(shard, dedup, resume).
"""
