"""Experiments built on training: the benchmark grid, the two-moons figure, hyper-parameter search.

Also the reports of a finished run from its work directory (`run_reports`,
`issue_report`). The top layer, with `export`.
"""
