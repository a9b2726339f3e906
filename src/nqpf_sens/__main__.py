from nqpf_sens.cli import main

raise SystemExit(main())
