"""modmt.app: the application on top of the layers: the `modmt` command group and `modmt demo`."""
