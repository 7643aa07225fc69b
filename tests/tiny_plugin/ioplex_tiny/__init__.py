"""The smallest useful ioplex plugin: one I/O server type whose single point counts writes."""

import ioplex

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "options": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "Options of the tiny I/O server.",
            "properties": {
                "start": {"type": "integer", "default": 0, "description": "Initial count."}
            },
        }
    },
}


class Tiny:
    def __init__(self, ioserver):
        ioserver.declare("count", ioserver.options["start"], writable=True)

    @ioplex.hookimpl
    def write(self, ioserver, point, value):
        ioserver.set(point, point.value + 1)


@ioplex.hookimpl
def register_ioserver_types(register):
    register("tiny", Tiny, SCHEMA, "counts writes")


@ioplex.hookimpl
def register_commands(cli):
    @cli.command(name="tiny-hello")
    def hello():
        """Say hello (a plugin's own subcommand)."""
        print("hello from tiny")
