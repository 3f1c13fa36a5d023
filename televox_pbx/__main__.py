import sys

from televox_pbx.cli import main

sys.exit(main())
