import sys

from edge_agent.install.cli import main

sys.exit(main(sys.argv[1:]))
