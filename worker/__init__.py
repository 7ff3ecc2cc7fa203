"""cancel-worker: bulk-cancel authorized Bambora payments from a file, safely and resumably."""

__version__ = "0.1.0"
