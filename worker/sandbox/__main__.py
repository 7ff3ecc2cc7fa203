"""`python -m worker.sandbox [--host H] [--port P] [--seed FILE] ...`: the sandbox alone."""

import sys

from worker.sandbox.server import main

if __name__ == "__main__":
    sys.exit(main())
