"""The report card page: one self-contained HTML file that shows a night's report.

Kept apart from `worker.observe.report_card` (the few lines printed at the end of a
run): this package reads the report and its run records back from disk, so it serves
`run`, `check`, `merge-reports` and the `report-card` command alike.
"""
