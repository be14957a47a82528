from curation.cli.main import main

raise SystemExit(main())
