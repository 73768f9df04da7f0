"""`python -m renderer` runs the kubestash command."""

from renderer.cli import main

raise SystemExit(main())
