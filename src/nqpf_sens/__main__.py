from nqpf_sens.cli import main, stop_on_terminate

stop_on_terminate()
raise SystemExit(main())
