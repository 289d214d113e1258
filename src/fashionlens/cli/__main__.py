"""``python -m fashionlens.cli``: the ``fashionlens`` command."""

import sys

from fashionlens.cli.main import main

sys.exit(main())
