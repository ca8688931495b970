from cisbridge.cli import main

raise SystemExit(main())
