"""``python -m galactica_ext.agent``: the same as ``galactica-ext agent``."""

from ..openmp import share_one_runtime

share_one_runtime()  # before anything imports torch (galactica_ext/openmp.py)

from .serve import main  # noqa: E402

main()
