"""`python -m slotattn ...` (and `torchrun -m slotattn ...`) run the CLI."""

import sys

from slotattn.cli import main

sys.exit(main())
