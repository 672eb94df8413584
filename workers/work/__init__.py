"""The task functions that do the work, the same in both modes: sampling, grading, scoring.

The embedded mode (``boundary.workers.embedded``) calls them in-process; a fleet's Celery tasks
call them through ``boundary.workers.delivery``."""
