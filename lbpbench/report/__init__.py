"""Reports of a sweep's results: tables, figures, HTML/Markdown pages, and sweep comparisons.

One concept per module, imported directly (importing this package loads no plotting library):
`load` (load_results, ReportError, group keys), `stats` (bootstrap_ci, iqm), `tables` (summarise,
write_tables), `figures` (all_figures), `render` (build_report, write_report, make_report),
`compare` (compare_results, compare_frames, format_comparison), `commands` (the click commands).
"""
