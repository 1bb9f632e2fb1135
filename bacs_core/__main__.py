import sys

from bacs_core.cli import main

sys.exit(main())
