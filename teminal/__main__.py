"""``python -m teminal run params/default.yaml`` — see ``teminal.cli``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
