"""The CLI's commands, one module per concept; importing a module registers its commands on
`pixelpool.commands.base.app`."""
