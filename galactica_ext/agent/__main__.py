"""``python -m galactica_ext.agent``: the same as ``galactica-ext agent``."""

from .serve import main

main()
