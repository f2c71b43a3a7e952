from meshlet.cli.main import main

raise SystemExit(main())
