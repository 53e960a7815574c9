import sys

from devstack.deploy.render import main

sys.exit(main())
