"""The command table.

Each command lives in its own module with ``add_arguments(parser)`` and
``run(args, ctx)``; ``run`` returns a JSON-serialisable result, and an
optional ``render(result)`` returns its text form.  Modules are imported
only when their command is chosen, so ``jenkinsctl --help`` never loads
docker or python-jenkins.  For the same reason a command module imports the
library modules it calls inside ``run`` (the one place below jenkinsctl where
sibling imports sit in functions): ``jenkinsctl COMMAND --help`` imports the
module and must not pay for the config, the engine or the redaction
(tests/unit/test_cli.py checks it).
"""

from __future__ import annotations

# name: (module, one line of help), in the order --help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("jenkinsctl.commands.validate", "check a config file and print it resolved"),
    "doctor": ("jenkinsctl.commands.doctor", "check the engine, socket, BuildKit, registry and controller"),
    "build": ("jenkinsctl.commands.build", "build an image on the host engine"),
    "push": ("jenkinsctl.commands.push", "push an image's tags and report its digest"),
    "deploy": ("jenkinsctl.commands.deploy",
               "redeploy an image by digest to a container, Swarm service, stack or webhook"),
    "ship": ("jenkinsctl.commands.ship", "build, push and deploy in one command"),
    "rollback": ("jenkinsctl.commands.rollback", "go back to the previous deployed version"),
    "plan": ("jenkinsctl.commands.plan", "show what apply would change"),
    "apply": ("jenkinsctl.commands.apply", "provision the controller and agents, and register the agents"),
    "down": ("jenkinsctl.commands.down", "remove the project's containers and networks"),
    "status": ("jenkinsctl.commands.status", "show the controller and agents"),
    "keys": ("jenkinsctl.commands.keys", "manage the SSH client key and agent host keys"),
    "agent-image": ("jenkinsctl.commands.agent_image", "build the agent image and print its reference"),
}
