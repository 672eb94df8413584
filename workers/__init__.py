"""Workers: sampling engines, graders, and the task functions that move work from the
database through them and back (run in-process in the embedded mode, by Celery in a fleet)."""
