"""boundary: measure the reasoning boundary of language models.

The library lives here (configuration, schema, benchmarks, prompts, pass@k, runs and
reports); ``boundary.api.cli`` is the click front end. Nothing in this package imports
``workers`` except the CLI, the composition root.
"""

__version__ = "0.1.0"
