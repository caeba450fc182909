"""cfglab's benchmarks: speed, time to quality and sampler error, each a script writing one JSON file.

Run them all with ``python benchmarks/run.py`` (see its docstring); ``book/benchmarks.ipynb`` renders the results.
"""
