from sla_monitor.cli import main

raise SystemExit(main())
