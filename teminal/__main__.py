"""``python -m teminal run params/default.yaml`` — see ``teminal.pipeline``."""
import sys

from .pipeline import main

if __name__ == "__main__":
    sys.exit(main())
