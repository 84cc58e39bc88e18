import sys

from pseudo3d.cli import main

sys.exit(main())
