"""``python -m graphfeat``."""
import sys

from .cli import main

sys.exit(main())
