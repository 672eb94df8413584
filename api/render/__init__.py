"""Rendering of reports: terminal tables and progress bars, plain-text analyses, the HTML report,
figures, and files for other tools. Nothing here runs SQL: it formats what analysis/ computed."""
