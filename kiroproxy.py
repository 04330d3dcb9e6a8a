from kiroproxy.cli import main

raise SystemExit(main())
