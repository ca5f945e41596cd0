"""A routes module whose import fails, as an app's may."""

raise RuntimeError("this module does not import")
