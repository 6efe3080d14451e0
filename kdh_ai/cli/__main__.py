"""``python -m kdh_ai.cli`` runs the ``kdh`` command."""

from kdh_ai.cli import main

main()
