from ftharness.cli import main

raise SystemExit(main())
