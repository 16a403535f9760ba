"""``python -m nbflow`` is the ``nbflow`` command."""

import sys

from .cli import main

sys.exit(main())
