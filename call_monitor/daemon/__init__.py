"""The daemon: the wiring of every floor below into one supervised process.

- :mod:`.pipeline`: stream items to judged calls (correlator, then the charter rules), pure;
- :mod:`.callbacks`: the callback service (the tracker, its store writer, its timer, the
  wall clock);
- :mod:`.service`: :class:`~call_monitor.daemon.service.Daemon`, one TaskGroup holding the
  AMI link, the pipeline, the store, the callbacks, the alert publisher and the web app.
"""
