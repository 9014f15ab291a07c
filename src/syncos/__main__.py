from syncos.cli import main

raise SystemExit(main())
