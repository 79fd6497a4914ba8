"""jenkinsctl: build, push and redeploy Docker images from Jenkins agents that
use the host's engine (docker-outside-of-docker), and provision those agents.

Importing this package must stay cheap: the CLI's --help and --version
paths import nothing but the standard library.
"""

__version__ = "0.1.0"
# The distribution (wheel) name. "jenkinsctl" on PyPI is an unrelated
# project: never install this one by that name.
DISTRIBUTION = "jenkinsctl-dood"
