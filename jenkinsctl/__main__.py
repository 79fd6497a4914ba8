import sys

from jenkinsctl.cli import main

sys.exit(main())
