from nnx_migrate.cli import main

raise SystemExit(main())
