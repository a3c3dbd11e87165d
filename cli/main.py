"""Entry point of the `countermand` command: each service's commands under one name."""

from __future__ import annotations

import typer

from cli import acls, auth, signing, topics
from cli.audit import commands as audit_commands
from cli.imports import command as imports
from devtools.registry import cli as registry_cli
from services.audit import cli as audit_cli
from services.enforcement import cli as enforcement_cli
from services.impact import cli as impact_cli
from services.intake import cli as intake_cli

app = typer.Typer(help="Countermand: enforce legal directives on AI model serving.", no_args_is_help=True)
app.add_typer(topics.app, name="topics")
app.add_typer(acls.app, name="acls")
app.add_typer(auth.app, name="auth")
app.add_typer(signing.app, name="signing")
app.add_typer(intake_cli.app, name="directive", help="Propose, approve, reject, lift and list directives (via intake).")
intake_cli.app.command("preview", help="Dry run of a directive file against impact's view (publishes nothing).")(
    impact_cli.preview
)
intake_cli.app.command("lift-preview", help="Dry run of lifting an active directive.")(impact_cli.lift_preview)
app.add_typer(impact_cli.app, name="impact", help="Recompute published impact digests; dry runs.")
app.add_typer(registry_cli.app, name="registry", help="The synthetic user registry for demos and benchmarks.")
registry_cli.app.command("import", help=imports.HELP)(imports.import_command)
audit_commands.register(audit_cli.app)  # report, explain, at: read from Kafka (cli/ may use impact's reproduce)
app.add_typer(audit_cli.app, name="audit", help="The hash-chained audit ledger: report, verify, replay.")
app.command("status", help="Enforcement status per directive and cluster.")(enforcement_cli.status)

if __name__ == "__main__":
    app()
