"""Countermand's services; each subpackage is deployable on its own and imports only `shared`."""
