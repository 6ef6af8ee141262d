from regstore.cli import main

raise SystemExit(main())
