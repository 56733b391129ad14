"""synthgate: may this set of synthetic medical images be shared?

Generators, a memorization audit, a utility audit and a release gate for synthetic brain-tumour MRI.
Importing the package is cheap: heavy libraries (torch, faiss, datasets) load in the modules that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
