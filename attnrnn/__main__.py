"""``python -m attnrnn``: the command line, as the ``attnrnn`` script runs it (and what
``torchrun -m attnrnn train CONFIG`` starts in every process)."""

import sys

from attnrnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
