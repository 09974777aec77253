"""related: related entries for Japanese blogs, computed away from the blog's server.

The data flows one way, one module per stage::

    entries (db/) -> clean text (text.py) -> tokens (tokenize.py)
      -> TF-IDF matrix (vectorize.py) -> neighbours (neighbours.py) -> rows written back (db/)

``pipeline.run_job`` strings the stages together; ``cli.py`` is a thin click layer over it.
"""

__version__ = "0.1.0"
