"""Impact service: the exact affected (user, model) set of every directive, from a columnar user view."""
