"""The pytest plugin: options, roles (owner of the stack or xdist worker), fixtures,
reports and xdist wiring. The only part of the package that imports pytest."""
