import sys

from call_monitor.cli import main

sys.exit(main())
