"""Report: the outcome file (writer), reading it back strictly (records), what a
rerun may skip (resume), the intent journal, and merging shard reports.
"""
